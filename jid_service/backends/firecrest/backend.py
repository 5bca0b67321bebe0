"""The ``firecrest`` backend: run managed tasks through a FirecREST v2 gateway.

Calls (FirecREST v2):

- submit: ``POST /compute/{system}/jobs`` with the batch script of
  :mod:`.script` -> 201 ``{"jobId": ...}``;
- statuses: one ``GET /compute/{system}/jobs`` listing per call, however many ids;
- read_log: ``GET /filesystem/{system}/ops/view?path=&size=&offset=``;
- cancel: ``DELETE /compute/{system}/jobs/{id}`` -> 204;
- health: ``GET /status/systems`` (the system is listed and its scheduler healthy).

Retries, token refresh and outages are the transport's (:mod:`.transport`);
any other 4xx on submit raises :class:`SubmissionRejected`. A submission whose
outcome is unknown (the request was sent but no answer came back) is never
blindly re-sent: the job listing is searched for the job's unique name first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from jid_service.backends.base import (
    Backend,
    BackendError,
    BackendJobState,
    BackendUnavailable,
    Rendering,
    SubmissionRejected,
    SubmitSpec,
    Submitted,
)
from jid_service.backends.firecrest import decode
from jid_service.backends.firecrest.config import (
    DEFAULT_LAUNCHER,
    ENV_FIRECREST_URL,
    FirecrestConfig,
    FirecrestConfigError,
)
from jid_service.backends.firecrest.decode import JOB_ID, error_text, json_body
from jid_service.backends.firecrest.script import (
    SAFE_NAME,
    SAFE_PATH,
    run_argv,
    script_and_log,
    submission_body,
)
from jid_service.backends.firecrest.transport import (
    BearerAuth,
    FirecrestTransport,
    RetryPolicy,
    TokenSource,
    TransientError,
    client_credentials,
)
from jid_service.backends.slurm_dialect import key_digest
from jid_service.log_text import LogChunk

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings

log = logging.getLogger(__name__)

VIEW_SIZE_LIMIT = 5 * 1024 * 1024
"""FirecREST's largest ``ops/view`` read (a larger ``size`` is a 400)."""


class FirecrestBackend(Backend):
    """Submit, poll, read logs of and cancel managed-task jobs through FirecREST v2.

    ``max_attempts``, ``retry_budget`` (seconds), ``backoff_initial`` and
    ``backoff_max`` make the :class:`RetryPolicy` of every call;
    ``missing_lookups`` bounds the one-by-one look-ups of :meth:`statuses`.
    """

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
        if not firecrest_url.startswith(("http://", "https://")):
            raise FirecrestConfigError(f"{ENV_FIRECREST_URL} must be an http(s) URL")
        if not system or not SAFE_NAME.fullmatch(system):
            raise FirecrestConfigError(f"firecrest_system {system!r} is not a valid system name")
        if not SAFE_PATH.fullmatch(work_dir or ""):
            raise FirecrestConfigError(
                f"firecrest_work_dir {work_dir!r} must be an absolute path of letters, "
                "digits and _.@+=:/-"
            )
        if not launcher or not (SAFE_PATH.fullmatch(launcher) or SAFE_NAME.fullmatch(launcher)):
            raise FirecrestConfigError(f"firecrest_launcher {launcher!r} is not a usable command")
        self.system = system
        self.work_dir = work_dir.rstrip("/") or "/"
        self.launcher = launcher
        self._url = firecrest_url.rstrip("/")
        self._auth = BearerAuth(token_source)
        self._missing_lookups = max(missing_lookups, 0)
        self._lookup_turn = 0
        policy = RetryPolicy(max_attempts, retry_budget, backoff_initial, backoff_max)
        self._transport = FirecrestTransport(
            self._url, self._auth, policy, request_timeout=request_timeout, verify=verify
        )

    def __repr__(self) -> str:
        return f"FirecrestBackend(url={self._url!r}, system={self.system!r})"

    @classmethod
    def from_config(
        cls, config: FirecrestConfig, token_source: TokenSource | None = None, **options: Any
    ) -> FirecrestBackend:
        """The backend ``config`` describes; tokens from its client credentials unless given.

        ``options`` are the keyword options of the constructor (retries, timeouts).
        """
        return cls(
            firecrest_url=config.url,
            system=config.system,
            work_dir=config.work_dir,
            launcher=config.launcher,
            token_source=token_source or client_credentials(config),
            **options,
        )

    @classmethod
    def from_settings(
        cls, settings: JIDSettings, env: Mapping[str, str] | None = None, **options: Any
    ) -> FirecrestBackend:
        """Build the backend from JID settings and the FirecREST environment variables.

        Raises :class:`FirecrestConfigError` naming the first missing variable or setting.
        """
        return cls.from_config(FirecrestConfig.from_settings(settings, env), **options)


    def run_argv(self, spec: SubmitSpec) -> list[str]:
        """The command the batch script runs on the compute node."""
        return run_argv(self.launcher, spec)

    def batch_script(self, spec: SubmitSpec, date: str | None = None) -> str:
        """The batch script for ``spec``; ``date`` as ``submit_slurm.sh`` writes it (now).

        The log file is ``NAME_EXPERIMENT_rRUN(04d)_DATE_%j.out`` in the work dir.
        Raises SubmissionRejected when a value cannot be written safely.
        """
        return script_and_log(spec, self.work_dir, self.launcher, date)[0]

    def submission(self, spec: SubmitSpec, date: str | None = None) -> dict[str, Any]:
        """The JSON body of ``POST /compute/{system}/jobs`` for ``spec``."""
        return submission_body(spec, self.work_dir, self.launcher, date)

    def render(self, spec: SubmitSpec) -> Rendering:
        """The batch script ``submit`` would send (nothing is submitted)."""
        return Rendering(
            backend=self.name, argv=self.run_argv(spec), script=self.batch_script(spec)
        )


    async def submit(self, spec: SubmitSpec) -> Submitted:
        """Submit the batch script; 4xx -> SubmissionRejected, outage -> BackendUnavailable."""
        body = self.submission(spec)
        name = body["job"]["name"]
        log_pattern = body["job"]["standardOutput"]
        found: list[str] = []

        async def before_retry(failure: TransientError) -> httpx.Response | None:
            # Re-sending after an unanswered submission could start the job twice.
            if not failure.ambiguous:
                return None
            job_id = await self._find_by_name(name)
            if job_id is None:
                return None
            found.append(job_id)
            return httpx.Response(201, json={"jobId": job_id})

        send = self._transport.post(f"/compute/{self.system}/jobs", body)
        try:
            resp = await self._transport.call("submit", send, before_retry=before_retry)
        except BackendUnavailable as err:
            cause = err.__cause__
            if not (isinstance(cause, TransientError) and cause.ambiguous):
                raise
            # the last try went unanswered: the job may exist after all
            job_id = await self._find_by_name(name)
            if job_id is None:
                raise
            found.append(job_id)
            resp = httpx.Response(201, json={"jobId": job_id})
        if resp.status_code != 201 and resp.status_code != 200:
            raise SubmissionRejected(f"FirecREST refused the job: {error_text(resp)}")
        tool_id = decode.submitted_job_id(json_body("submit", resp))
        if found:
            log.warning("FirecREST submit: found job %s after an unanswered submission", tool_id)
        return Submitted(tool_id=tool_id, log_path=log_pattern.replace("%j", tool_id))

    async def _list_jobs(self, what: str) -> list[dict[str, Any]]:
        resp = await self._transport.call(
            what, self._transport.get(f"/compute/{self.system}/jobs")
        )
        if resp.status_code != 200:
            raise BackendError(f"FirecREST {what}: {error_text(resp)}")
        return decode.listed_jobs(json_body(what, resp))

    async def _find_by_name(self, name: str) -> str | None:
        """The id of the newest listed job called ``name``, if any; None when it cannot tell."""
        try:
            jobs = await self._list_jobs("job lookup")
        except BackendError:
            return None
        return decode.newest_job_id(str(job.get("jobId")) for job in jobs
                                    if job.get("name") == name)

    async def find_submitted(self, job_key: str) -> Submitted | None:
        """The job an interrupted submission of ``job_key`` left, by its name; None if unlisted.

        Every job's name ends with the digest of its key (``slurm_dialect.job_name``).
        A listing that fails raises, so the JID cannot mistake "cannot tell" for
        "never submitted" and submit the job twice.
        """
        suffix = "-" + key_digest(job_key)
        jobs = await self._list_jobs("job lookup")
        tool_id = decode.newest_job_id(str(job.get("jobId")) for job in jobs
                                       if str(job.get("name", "")).endswith(suffix))
        if tool_id is None:
            return None
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
            result[tool_id] = decode.job_state(tool_id, job.get("status") or {})
        missing = sorted(t for t in wanted - result.keys() if JOB_ID.fullmatch(t))
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
        send = self._transport.get(f"/compute/{self.system}/jobs/{tool_id}")
        try:
            resp = await self._transport.call("job lookup", send, attempts=1)
        except BackendError as err:
            log.info("FirecREST lookup of job %s: %s", tool_id, err)
            return None
        if resp.status_code != 200:
            return None
        try:
            data = resp.json()
        except ValueError:
            return None
        return decode.listed_state(data, tool_id)

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
        if not SAFE_PATH.fullmatch(path):
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
        params = {"path": path, "size": size, "offset": offset}
        send = self._transport.get(f"/filesystem/{self.system}/ops/view", params)
        resp = await self._transport.call("log read", send)
        if resp.status_code == 404:
            return ""
        if resp.status_code != 200:
            raise BackendError(f"FirecREST log read of job {tool_id}: {error_text(resp)}")
        return decode.view_text(json_body("log read", resp))

    async def _log_path_of(self, tool_id: str) -> str:
        """The job's standard output file from FirecREST's job metadata."""
        if not JOB_ID.fullmatch(tool_id):
            raise BackendError(f"job id {tool_id!r} is not a FirecREST job id")
        send = self._transport.get(f"/compute/{self.system}/jobs/{tool_id}/metadata")
        resp = await self._transport.call("job metadata", send)
        if resp.status_code == 200:
            path = decode.standard_output(json_body("job metadata", resp), tool_id)
            if path is not None:
                return path
        raise BackendError(f"FirecREST knows no log file of job {tool_id}")

    async def cancel(self, tool_id: str) -> None:
        """Cancel the job; a job that already ended (or is unknown) is not an error."""
        if not JOB_ID.fullmatch(tool_id):
            raise BackendError(f"job id {tool_id!r} is not a FirecREST job id")
        delete = self._transport.delete(f"/compute/{self.system}/jobs/{tool_id}")

        async def send() -> httpx.Response:
            resp = await delete()
            # scancel of an ended job fails with a 500 that no retry will fix
            if resp.status_code >= 400 and decode.mentions_ended(resp):
                return httpx.Response(204, request=resp.request)
            return resp

        resp = await self._transport.call("cancel", send)
        if resp.status_code in (200, 202, 204, 404):
            return
        raise BackendError(f"FirecREST cancel of job {tool_id}: {error_text(resp)}")

    async def health(self) -> None:
        """Raise BackendUnavailable unless FirecREST lists the system with a healthy scheduler."""
        resp = await self._transport.call(
            "health check", self._transport.get("/status/systems"), attempts=2
        )
        if resp.status_code != 200:
            raise BackendUnavailable(f"FirecREST health check: {error_text(resp)}")
        problem = decode.system_problem(json_body("health check", resp), self.system)
        if problem is not None:
            raise BackendUnavailable(problem)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._transport.close()
