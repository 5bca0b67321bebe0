"""The ``firecrest`` backend: run managed tasks through a FirecREST v2 gateway.

The JID talks to FirecREST with pyfirecrest's v2 async client
(:class:`firecrest.v2.AsyncFirecrest`), authenticated by OIDC client
credentials (``FIRECREST_CLIENT_ID``, ``FIRECREST_CLIENT_SECRET``,
``AUTH_TOKEN_URL``) against ``FIRECREST_URL``.

Calls (FirecREST v2):

- submit: ``POST /compute/{system}/jobs`` with a batch script equivalent to what
  ``submit_slurm.sh`` runs (``#SBATCH`` lines, ``export EXPERIMENT/RUN_NUM``,
  then ``lute-run-task -c CONFIG -t NAME [--debug]``) -> 201 ``{"jobId": ...}``;
- statuses: one ``GET /compute/{system}/jobs`` listing per call, however many ids;
- read_log: ``GET /filesystem/{system}/ops/view?path=&size=&offset=``;
- cancel: ``DELETE /compute/{system}/jobs/{id}`` -> 204;
- health: ``GET /status/systems`` (the system is listed and its scheduler healthy).

Failures: 5xx, 408, 424 (SSH), 429, timeouts and connection errors are retried
with exponential backoff (tenacity) within a bounded budget, then raise
:class:`BackendUnavailable`; a 401 refreshes the token once and retries; any
other 4xx on submit raises :class:`SubmissionRejected`. A submission whose
outcome is unknown (the request was sent but no answer came back) is never
blindly re-sent: the job listing is searched for the job's unique name first.

Request helpers: pyfirecrest's public methods turn every non-expected status
into one exception type and its ``view`` cannot read from an offset, so the
backend calls the client's request helpers (``_get_request`` and friends, which
add the auth and tracing headers) and checks status codes itself. The unit
tests exercise every one of them against the real request shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from jid_service.backends.base import (
    Backend,
    BackendError,
    BackendJobState,
    BackendUnavailable,
    LogChunk,
    Rendering,
    SubmissionRejected,
    SubmitSpec,
    Submitted,
    log_path_for,
)
from jid_service.backends.states import ExitCode, map_state, parse_exit_code

log = logging.getLogger(__name__)

ENV_CLIENT_ID = "FIRECREST_CLIENT_ID"
ENV_CLIENT_SECRET = "FIRECREST_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_TOKEN_URL = "AUTH_TOKEN_URL"  # noqa: S105 - a variable name, not a secret
ENV_FIRECREST_URL = "FIRECREST_URL"

MIN_TOKEN_VALIDITY = 60
"""Seconds a token must still be valid to be reused (the server rejects < 30 s)."""

VIEW_SIZE_LIMIT = 5 * 1024 * 1024
"""FirecREST's largest ``ops/view`` read (a larger ``size`` is a 400)."""

DEFAULT_LAUNCHER = "lute-run-task"

# Statuses worth retrying: the gateway or the scheduler behind it failed now.
_TRANSIENT_STATUS = frozenset({408, 424, 429, 500, 502, 503, 504})
# Of those, the ones after which a submission may have happened anyway.
_AMBIGUOUS_STATUS = frozenset({408, 502, 504})
# Messages of a cancel that found the job already ended.
_ALREADY_ENDED = ("already completing or completed", "invalid job id", "job not found")

# FirecREST splices some fields into a remote shell command inside single
# quotes; every value the backend sends (or writes into #SBATCH lines) keeps
# to this set so no value can break out of them.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.@+=:-]+")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_.@+=:/-]*")
_SBATCH_OPTION = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*(=[^\s\"'\\#]+)?")
_JOB_ID = re.compile(r"[A-Za-z0-9]+")


class FirecrestConfigError(BackendError, ValueError):
    """The firecrest backend is not configured well enough to start."""


class TokenSource(Protocol):
    """What the backend needs of an OIDC client: pyfirecrest's ClientCredentialsAuth fits."""

    def get_access_token(self) -> str:
        """A valid access token (may block on a token request)."""
        ...


class _TransientError(Exception):
    """A failure worth retrying; ``ambiguous``: a submission may have happened."""

    def __init__(self, message: str, *, ambiguous: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class _BearerAuth:
    """Hands pyfirecrest a bearer header; fetches tokens off the event loop.

    pyfirecrest's ClientCredentialsAuth asks the token server with blocking
    ``requests``; running it in a thread keeps the JID answering meanwhile.
    """

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the token or the client secret
        return f"<{type(self).__name__} {type(self._source).__name__}>"

    async def auth_headers(self) -> dict[str, str]:
        """The Authorization header of the next request."""
        async with self._lock:
            token = await asyncio.to_thread(self._source.get_access_token)
        return {"Authorization": f"Bearer {token}"}

    def invalidate(self) -> None:
        """Drop a cached token so the next request fetches a fresh one (after a 401)."""
        invalidate = getattr(self._source, "invalidate", None)
        if callable(invalidate):
            invalidate()
            return
        # ClientCredentialsAuth keeps its token in these two attributes.
        if hasattr(self._source, "_access_token"):
            self._source._access_token = None  # type: ignore[attr-defined]
        if hasattr(self._source, "_token_expiration_ts"):
            self._source._token_expiration_ts = None  # type: ignore[attr-defined]


def _key_digest(job_key: str) -> str:
    return hashlib.sha256(job_key.encode()).hexdigest()[:12]


def job_name(spec: SubmitSpec) -> str:
    """The Slurm job name: the task name and a digest of the job key, unique per job."""
    return f"{spec.taskname}-{_key_digest(spec.job_key)}"


def _check_name(field: str, value: str) -> str:
    if not _SAFE_NAME.fullmatch(value):
        raise SubmissionRejected(
            f"{field} {value!r} cannot be sent to FirecREST: only letters, digits and _.@+=:- "
            "are allowed"
        )
    return value


def _check_sbatch_option(option: str) -> str:
    if not _SBATCH_OPTION.fullmatch(option):
        raise SubmissionRejected(f"Slurm option {option!r} cannot be written as an #SBATCH line")
    return option


def _error_text(resp: httpx.Response) -> str:
    """``HTTP 400: message`` from FirecREST's ``{"errorType", "message"}`` (or FastAPI's detail)."""
    message = ""
    with contextlib.suppress(ValueError):
        body = resp.json()
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("detail") or body.get("error") or "")
    if not message:
        message = resp.text
    message = " ".join(message.split())[:300]
    return f"HTTP {resp.status_code}: {message}" if message else f"HTTP {resp.status_code}"


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise FirecrestConfigError(f"the firecrest backend needs the environment variable {name}")
    return value


class FirecrestBackend(Backend):
    """Submit, poll, read logs of and cancel managed-task jobs through FirecREST v2."""

    name = "firecrest"

    def __init__(
        self,
        *,
        firecrest_url: str,
        system: str,
        work_dir: str,
        token_source: TokenSource,
        launcher: str = DEFAULT_LAUNCHER,
        max_attempts: int = 4,
        retry_budget: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        request_timeout: float = 30.0,
        missing_lookups: int = 4,
        verify: bool | str = True,
    ) -> None:
        from firecrest.v2 import AsyncFirecrest  # the optional "firecrest" extra

        if not firecrest_url.startswith(("http://", "https://")):
            raise FirecrestConfigError(f"{ENV_FIRECREST_URL} must be an http(s) URL")
        if not system or not _SAFE_NAME.fullmatch(system):
            raise FirecrestConfigError(f"firecrest_system {system!r} is not a valid system name")
        if not _SAFE_PATH.fullmatch(work_dir or ""):
            raise FirecrestConfigError(
                f"firecrest_work_dir {work_dir!r} must be an absolute path of letters, "
                "digits and _.@+=:/-"
            )
        if not launcher or not (_SAFE_PATH.fullmatch(launcher) or _SAFE_NAME.fullmatch(launcher)):
            raise FirecrestConfigError(f"firecrest_launcher {launcher!r} is not a usable command")
        if max_attempts < 1:
            raise FirecrestConfigError("max_attempts must be at least 1")
        self.system = system
        self.work_dir = work_dir.rstrip("/") or "/"
        self.launcher = launcher
        self._url = firecrest_url.rstrip("/")
        self._auth = _BearerAuth(token_source)
        self._max_attempts = max_attempts
        self._retry_budget = retry_budget
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._missing_lookups = max(missing_lookups, 0)
        self._lookup_turn = 0
        self._client = AsyncFirecrest(
            firecrest_url=self._url, authorization=self._auth, verify=verify
        )
        self._client.timeout = request_timeout
        # 429s come back to this backend's own retry policy instead of
        # pyfirecrest's unbounded rate-limit loop.
        self._client.num_retries_rate_limit = 0
        self._client.disable_client_logging = True

    def __repr__(self) -> str:
        return f"FirecrestBackend(url={self._url!r}, system={self.system!r})"

    @classmethod
    def from_settings(
        cls, settings: Any, env: Mapping[str, str] | None = None, **options: Any
    ) -> FirecrestBackend:
        """Build the backend from JID settings and the FirecREST environment variables.

        Raises :class:`FirecrestConfigError` naming the first missing variable or setting.
        """
        from firecrest import ClientCredentialsAuth

        env = os.environ if env is None else env
        url = _require(env, ENV_FIRECREST_URL)
        client_id = _require(env, ENV_CLIENT_ID)
        client_secret = _require(env, ENV_CLIENT_SECRET)
        token_url = _require(env, ENV_TOKEN_URL)
        system = getattr(settings, "firecrest_system", None)
        work_dir = getattr(settings, "firecrest_work_dir", None)
        if not system:
            raise FirecrestConfigError("the firecrest backend needs the setting firecrest_system")
        if not work_dir:
            raise FirecrestConfigError("the firecrest backend needs the setting firecrest_work_dir")
        launcher = getattr(settings, "firecrest_launcher", None) or DEFAULT_LAUNCHER
        auth = ClientCredentialsAuth(
            client_id, client_secret, token_url, min_token_validity=MIN_TOKEN_VALIDITY
        )
        auth.timeout = 10  # a hung token server must not hang the JID
        return cls(
            firecrest_url=url,
            system=str(system),
            work_dir=str(work_dir),
            launcher=str(launcher),
            token_source=auth,
            **options,
        )

    # -- the batch script -------------------------------------------------

    def run_argv(self, spec: SubmitSpec) -> list[str]:
        """The command the batch script runs on the compute node."""
        argv = [self.launcher, "-c", str(spec.config_path), "-t", spec.taskname]
        if spec.debug:
            argv.append("--debug")
        return argv

    def _script_and_log(self, spec: SubmitSpec, date: str | None) -> tuple[str, str]:
        date = date or datetime.now().strftime("%Y-%m-%dT%H%M%S")
        _check_name("experiment", spec.experiment)
        _check_name("run", spec.run)
        _check_name("task name", spec.taskname)
        _check_name("date", date)
        log_file = str(log_path_for(Path(self.work_dir), spec, date, "%j"))
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={job_name(spec)}",
            f"#SBATCH --output={log_file}",
            f"#SBATCH --error={log_file}",
        ]
        lines += [f"#SBATCH {_check_sbatch_option(opt)}" for opt in spec.slurm_args]
        lines += [
            "# Written by the LUTE job interface daemon (firecrest backend).",
            f"export EXPERIMENT={shlex.quote(spec.experiment)}",
            f"export RUN_NUM={shlex.quote(spec.run)}",
            "exec " + " ".join(shlex.quote(arg) for arg in self.run_argv(spec)),
        ]
        return "\n".join(lines) + "\n", log_file

    def batch_script(self, spec: SubmitSpec, date: str | None = None) -> str:
        """The batch script for ``spec``; ``date`` as ``submit_slurm.sh`` writes it (now).

        The log file is ``NAME_EXPERIMENT_rRUN(04d)_DATE_%j.out`` in the work dir.
        Raises SubmissionRejected when a value cannot be written safely.
        """
        return self._script_and_log(spec, date)[0]

    def submission(self, spec: SubmitSpec, date: str | None = None) -> dict[str, Any]:
        """The JSON body of ``POST /compute/{system}/jobs`` for ``spec``."""
        script, log_file = self._script_and_log(spec, date)
        return {
            "job": {
                "name": job_name(spec),
                "script": script,
                "workingDirectory": self.work_dir,
                "standardOutput": log_file,
                "standardError": log_file,
                "env": {"EXPERIMENT": spec.experiment, "RUN_NUM": spec.run},
            }
        }

    def render(self, spec: SubmitSpec) -> Rendering:
        """The batch script ``submit`` would send (nothing is submitted)."""
        return Rendering(
            backend=self.name, argv=self.run_argv(spec), script=self.batch_script(spec)
        )

    # -- requests ---------------------------------------------------------

    def _retrying(self, attempts: int | None = None) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(attempts or self._max_attempts)
            | stop_after_delay(self._retry_budget),
            wait=wait_exponential_jitter(
                initial=self._backoff_initial, max=self._backoff_max, jitter=self._backoff_initial
            ),
            retry=retry_if_exception_type(_TransientError),
            reraise=True,
        )

    async def _send(
        self, what: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        """One request; transport failures and token-server outages become _TransientError."""
        import requests
        from firecrest.FirecrestException import ClientsCredentialsException

        try:
            return await send()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise _TransientError(
                f"{what}: cannot connect to FirecREST ({type(err).__name__})"
            ) from err
        except (httpx.TimeoutException, httpx.TransportError) as err:
            # the request may have reached the server: the outcome is unknown
            raise _TransientError(
                f"{what}: no answer from FirecREST ({type(err).__name__})", ambiguous=True
            ) from err
        except requests.RequestException as err:
            raise _TransientError(
                f"{what}: cannot reach the token server ({type(err).__name__})"
            ) from err
        except ClientsCredentialsException as err:
            status = err.responses[-1].status_code if err.responses else 0
            if status >= 500 or status in (408, 429):
                raise _TransientError(f"{what}: the token server answered HTTP {status}") from err
            raise BackendUnavailable(
                f"FirecREST {what}: the token server refused the client credentials "
                f"(HTTP {status}); check {ENV_CLIENT_ID}, {ENV_CLIENT_SECRET} and {ENV_TOKEN_URL}",
                retry_after=60.0,
            ) from err

    async def _call(
        self,
        what: str,
        send: Callable[[], Awaitable[httpx.Response]],
        *,
        before_retry: Callable[[_TransientError], Awaitable[httpx.Response | None]] | None = None,
        attempts: int | None = None,
    ) -> httpx.Response:
        """Send with retries; returns any non-transient response (the caller checks it).

        ``before_retry`` runs before each repeat with the failure that caused it
        and may return a response to use instead of sending again.
        """
        last: _TransientError | None = None
        try:
            async for attempt in self._retrying(attempts):
                with attempt:
                    if last is not None and before_retry is not None:
                        replacement = await before_retry(last)
                        if replacement is not None:
                            return replacement
                    try:
                        return await self._attempt(what, send)
                    except _TransientError as err:
                        last = err
                        raise
        except _TransientError as err:
            number = attempt.retry_state.attempt_number
            raise BackendUnavailable(
                f"FirecREST {what} failed after {number} attempt(s): {err}",
                retry_after=err.retry_after or 5.0,
            ) from err
        raise AssertionError("unreachable")  # pragma: no cover - tenacity always ends above

    async def _attempt(
        self, what: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        resp = await self._send(what, send)
        if resp.status_code == 401:
            log.info("FirecREST %s: token refused (401), fetching a new one", what)
            self._auth.invalidate()
            resp = await self._send(what, send)
            if resp.status_code == 401:
                raise BackendUnavailable(
                    f"FirecREST {what}: the access token was refused twice ({_error_text(resp)})",
                    retry_after=30.0,
                )
        if resp.status_code in _TRANSIENT_STATUS:
            raise _TransientError(
                f"{what}: {_error_text(resp)}",
                ambiguous=resp.status_code in _AMBIGUOUS_STATUS,
                retry_after=_retry_after(resp),
            )
        return resp

    def _json(self, what: str, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError as err:
            raise BackendError(f"FirecREST {what}: the answer is not JSON") from err

    # -- the backend interface -------------------------------------------

    async def submit(self, spec: SubmitSpec) -> Submitted:
        """Submit the batch script; 4xx -> SubmissionRejected, outage -> BackendUnavailable."""
        body = self.submission(spec)
        name = body["job"]["name"]
        log_pattern = body["job"]["standardOutput"]
        endpoint = f"/compute/{self.system}/jobs"
        found: list[str] = []

        async def send() -> httpx.Response:
            return await self._client._post_request(endpoint=endpoint, json_data=body)

        async def before_retry(failure: _TransientError) -> httpx.Response | None:
            # Re-sending after an unanswered submission could start the job twice.
            if not failure.ambiguous:
                return None
            job_id = await self._find_by_name(name)
            if job_id is None:
                return None
            found.append(job_id)
            return httpx.Response(201, json={"jobId": job_id})

        try:
            resp = await self._call("submit", send, before_retry=before_retry)
        except BackendUnavailable as err:
            cause = err.__cause__
            if not (isinstance(cause, _TransientError) and cause.ambiguous):
                raise
            # the last try went unanswered: the job may exist after all
            job_id = await self._find_by_name(name)
            if job_id is None:
                raise
            found.append(job_id)
            resp = httpx.Response(201, json={"jobId": job_id})
        if resp.status_code != 201 and resp.status_code != 200:
            raise SubmissionRejected(f"FirecREST refused the job: {_error_text(resp)}")
        data = self._json("submit", resp)
        job_id = data.get("jobId") if isinstance(data, dict) else None
        if job_id is None or not _JOB_ID.fullmatch(str(job_id)):
            raise BackendError(f"FirecREST accepted the job but sent no job id: {data!r:.200}")
        tool_id = str(job_id)
        if found:
            log.warning("FirecREST submit: found job %s after an unanswered submission", tool_id)
        return Submitted(tool_id=tool_id, log_path=log_pattern.replace("%j", tool_id))

    async def _list_jobs(self, what: str) -> list[dict[str, Any]]:
        endpoint = f"/compute/{self.system}/jobs"

        async def send() -> httpx.Response:
            return await self._client._get_request(endpoint=endpoint)

        resp = await self._call(what, send)
        if resp.status_code != 200:
            raise BackendError(f"FirecREST {what}: {_error_text(resp)}")
        data = self._json(what, resp)
        jobs = data.get("jobs") if isinstance(data, dict) else None
        return [job for job in jobs or [] if isinstance(job, dict)]

    async def _find_by_name(self, name: str) -> str | None:
        """The id of the newest listed job called ``name``, if any; None when it cannot tell."""
        try:
            jobs = await self._list_jobs("job lookup")
        except BackendError:
            return None
        ids = [str(job.get("jobId")) for job in jobs if job.get("name") == name]
        ids = [job_id for job_id in ids if _JOB_ID.fullmatch(job_id)]
        if not ids:
            return None
        return max(ids, key=lambda j: (len(j), j))

    async def find_submitted(self, job_key: str) -> Submitted | None:
        """The job an interrupted submission of ``job_key`` left, by its name; None if unlisted.

        Every job's name ends with the digest of its key (:func:`job_name`). A
        listing that fails raises, so the JID cannot mistake "cannot tell" for
        "never submitted" and submit the job twice.
        """
        suffix = "-" + _key_digest(job_key)
        jobs = await self._list_jobs("job lookup")
        ids = [str(job.get("jobId")) for job in jobs if str(job.get("name", "")).endswith(suffix)]
        ids = [job_id for job_id in ids if _JOB_ID.fullmatch(job_id)]
        if not ids:
            return None
        tool_id = max(ids, key=lambda j: (len(j), j))
        try:
            log_path: str | None = await self._log_path_of(tool_id)
        except BackendError:
            log_path = None  # read_log asks the metadata again when it needs it
        return Submitted(tool_id=tool_id, log_path=log_path)

    async def statuses(self, tool_ids: list[str]) -> dict[str, BackendJobState]:
        """States of the asked jobs from one listing call, plus a bounded fallback.

        FirecREST's listing reads ``squeue`` and ``sacct``'s default time window
        (today), so a job that ended long ago can drop out of it. Up to
        ``missing_lookups`` such ids per call are asked for one by one
        (``GET /compute/{system}/jobs/{id}``, which searches all of ``sacct``),
        taking turns when more are missing; ids still unknown are left out.
        """
        wanted = set(tool_ids)
        if not wanted:
            return {}
        result: dict[str, BackendJobState] = {}
        for job in await self._list_jobs("job listing"):
            tool_id = str(job.get("jobId", ""))
            if tool_id not in wanted:
                continue
            result[tool_id] = job_state(tool_id, job.get("status") or {})
        missing = sorted(t for t in wanted - result.keys() if _JOB_ID.fullmatch(t))
        if missing and self._missing_lookups:
            start = self._lookup_turn % len(missing)
            batch = (missing[start:] + missing[:start])[: self._missing_lookups]
            self._lookup_turn += len(batch)
            for tool_id in batch:
                state = await self._lookup(tool_id)
                if state is not None:
                    result[tool_id] = state
        return result

    async def _lookup(self, tool_id: str) -> BackendJobState | None:
        """One job's state by id; None when FirecREST does not know it or cannot answer."""
        endpoint = f"/compute/{self.system}/jobs/{tool_id}"

        async def send() -> httpx.Response:
            return await self._client._get_request(endpoint=endpoint)

        try:
            resp = await self._call("job lookup", send, attempts=1)
        except BackendError as err:
            log.info("FirecREST lookup of job %s: %s", tool_id, err)
            return None
        if resp.status_code != 200:
            return None
        try:
            data = resp.json()
        except ValueError:
            return None
        for job in (data.get("jobs") if isinstance(data, dict) else None) or []:
            if isinstance(job, dict) and str(job.get("jobId", "")) == tool_id:
                return job_state(tool_id, job.get("status") or {})
        return None

    async def read_log(
        self, tool_id: str, log_path: str | None, offset: int, limit: int
    ) -> LogChunk:
        """Up to ``limit`` bytes of the log from ``offset``; a missing file reads as empty.

        FirecREST's ``ops/view`` reads at most 5 MiB per call, so a larger
        ``limit`` takes several calls (until one comes back short).
        """
        offset = max(offset, 0)
        if limit <= 0:
            return LogChunk(text="", offset=offset, next_offset=offset)
        path = log_path or await self._log_path_of(tool_id)
        if not _SAFE_PATH.fullmatch(path):
            raise BackendError(f"log path {path!r} of job {tool_id} cannot be sent to FirecREST")
        parts: list[str] = []
        position = offset
        while position - offset < limit:
            size = min(limit - (position - offset), VIEW_SIZE_LIMIT)
            text = await self._view(tool_id, path, position, size)
            read = len(text.encode("utf-8"))
            parts.append(text)
            position += read
            if read < size:
                break
        return LogChunk(text="".join(parts), offset=offset, next_offset=position)

    async def _view(self, tool_id: str, path: str, offset: int, size: int) -> str:
        """One ``ops/view`` read; a missing file (404) reads as empty."""
        endpoint = f"/filesystem/{self.system}/ops/view"
        params = {"path": path, "size": size, "offset": offset}

        async def send() -> httpx.Response:
            return await self._client._get_request(endpoint=endpoint, params=params)

        resp = await self._call("log read", send)
        if resp.status_code == 404:
            return ""
        if resp.status_code != 200:
            raise BackendError(f"FirecREST log read of job {tool_id}: {_error_text(resp)}")
        return view_text(self._json("log read", resp))

    async def _log_path_of(self, tool_id: str) -> str:
        """The job's standard output file from FirecREST's job metadata."""
        if not _JOB_ID.fullmatch(tool_id):
            raise BackendError(f"job id {tool_id!r} is not a FirecREST job id")
        endpoint = f"/compute/{self.system}/jobs/{tool_id}/metadata"

        async def send() -> httpx.Response:
            return await self._client._get_request(endpoint=endpoint)

        resp = await self._call("job metadata", send)
        if resp.status_code == 200:
            data = self._json("job metadata", resp)
            for job in (data.get("jobs") if isinstance(data, dict) else None) or []:
                if isinstance(job, dict) and job.get("standardOutput"):
                    return str(job["standardOutput"]).replace("%j", tool_id)
        raise BackendError(f"FirecREST knows no log file of job {tool_id}")

    async def cancel(self, tool_id: str) -> None:
        """Cancel the job; a job that already ended (or is unknown) is not an error."""
        if not _JOB_ID.fullmatch(tool_id):
            raise BackendError(f"job id {tool_id!r} is not a FirecREST job id")
        endpoint = f"/compute/{self.system}/jobs/{tool_id}"

        async def send() -> httpx.Response:
            resp = await self._client._delete_request(endpoint=endpoint)
            # scancel of an ended job fails with a 500 that no retry will fix
            if resp.status_code >= 400 and _mentions_ended(resp):
                return httpx.Response(204, request=resp.request)
            return resp

        resp = await self._call("cancel", send)
        if resp.status_code in (200, 202, 204, 404):
            return
        raise BackendError(f"FirecREST cancel of job {tool_id}: {_error_text(resp)}")

    async def health(self) -> None:
        """Raise BackendUnavailable unless FirecREST lists the system with a healthy scheduler."""

        async def send() -> httpx.Response:
            return await self._client._get_request(endpoint="/status/systems")

        resp = await self._call("health check", send, attempts=2)
        if resp.status_code != 200:
            raise BackendUnavailable(f"FirecREST health check: {_error_text(resp)}")
        data = self._json("health check", resp)
        systems = data.get("systems") if isinstance(data, dict) else None
        system = next(
            (s for s in systems or [] if isinstance(s, dict) and s.get("name") == self.system),
            None,
        )
        if system is None:
            raise BackendUnavailable(f"FirecREST does not offer the system {self.system!r}")
        for service in system.get("servicesHealth") or []:
            if (
                isinstance(service, dict)
                and service.get("serviceType") == "scheduler"
                and service.get("healthy") is False
            ):
                detail = service.get("message") or "no detail"
                raise BackendUnavailable(
                    f"FirecREST reports the scheduler of {self.system!r} unhealthy: {detail}"
                )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._client.close_session()


def _mentions_ended(resp: httpx.Response) -> bool:
    text = _error_text(resp).lower()
    return any(marker in text for marker in _ALREADY_ENDED)


def job_state(tool_id: str, status: Mapping[str, Any]) -> BackendJobState:
    """A FirecREST ``status`` object (``state``, ``exitCode``, ``interruptSignal``) as a state."""
    raw = status.get("state")
    if isinstance(raw, list):  # slurmrestd-style flag lists
        raw = ",".join(str(part) for part in raw)
    mapped = map_state(None if raw is None else str(raw))
    exit_code: int | None = None
    if mapped.status.finished:
        parsed = parse_exit_code(status.get("exitCode"))
        signal = status.get("interruptSignal")
        if isinstance(signal, int) and not isinstance(signal, bool) and signal > 0:
            parsed = ExitCode(parsed.returncode if parsed else 0, signal)
        exit_code = parsed.code if parsed else None
    return BackendJobState(
        tool_id=tool_id, status=mapped.status, raw_status=mapped.raw, exit_code=exit_code
    )


def view_text(data: Any) -> str:
    """The text of an ``ops/view`` answer.

    Older servers send ``{"output": "text"}``, newer ``{"output": {"content": "text", ...}}``.
    """
    output = data.get("output") if isinstance(data, dict) else None
    if isinstance(output, dict):
        output = output.get("content")
    return output if isinstance(output, str) else ""


def create(settings: Any) -> FirecrestBackend:
    """The backend registry's entry point: a FirecrestBackend from JID settings and env."""
    return FirecrestBackend.from_settings(settings)
