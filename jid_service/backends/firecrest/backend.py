"""The ``firecrest`` backend: run managed tasks through a FirecREST v2 gateway.

Calls (FirecREST v2):

- submit: ``POST /compute/{system}/jobs`` with the batch script of
  :mod:`.script` -> 201 ``{"jobId": ...}``;
- statuses: one ``GET /compute/{system}/jobs`` listing per call, however many ids;
- read_log: ``GET /filesystem/{system}/ops/view`` in whole blocks (:mod:`.log_reader`);
- cancel: ``DELETE /compute/{system}/jobs/{id}`` -> 204;
- health: ``GET /status/systems`` (the system is listed and its scheduler
  healthy) and a job listing that works.

Retries, token refresh and outages are the transport's (:mod:`.transport`),
listings and lookups :mod:`.listing`'s.

A submission makes at most one job. Its definite refusals (request
validation 400/422, QOS limits 403, an unknown system 404, and the 500 that
carries ``sbatch: error:``) raise :class:`SubmissionRejected` at once. After
any other failure that reached the gateway (a 500 from FirecREST's SSH
command timeout while ``sbatch`` may still run, a proxy's 502/504, a read
timeout) the submission is never sent again: the listing is searched for the
job's unique name under the retry policy, and when the job does not show up,
:class:`SubmissionOutcomeUnknown` is raised and the job key remembered, so
the next submission of that key looks for the job before it sends anything.
Only failures after which nothing ran (no connection, 429, the gateway's
health-gate 503) are resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jid_service.backends.base import (
    Backend,
    BackendError,
    BackendJobState,
    BackendUnavailable,
    Rendering,
    SubmissionOutcomeUnknown,
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
from jid_service.backends.firecrest.listing import JobListing
from jid_service.backends.firecrest.log_reader import VIEW_SIZE_LIMIT, LogReader
from jid_service.backends.firecrest.script import (
    SAFE_NAME,
    SAFE_PATH,
    run_argv,
    script_and_log,
    submission_body,
)
from jid_service.backends.firecrest.staging import FirecrestStaging
from jid_service.backends.firecrest.transport import (
    BearerAuth,
    FirecrestTransport,
    OutcomeUnknown,
    RetryPolicy,
    TokenSource,
    TransientError,
    client_credentials,
)
from jid_service.backends.job_cost import CostReading
from jid_service.backends.slurm_dialect import key_digest
from jid_service.log_text import LogChunk

if TYPE_CHECKING:
    from jid_service.backends.staging_files import StageInItem, StageOutItem
    from jid_service.models import StagedFile
    from jid_service.settings import JIDSettings

log = logging.getLogger(__name__)

__all__ = ["VIEW_SIZE_LIMIT", "FirecrestBackend"]

UNSETTLED_RETRY = 30.0
"""``Retry-After`` of a submission whose outcome is unknown: by then a late ``sbatch``
has created its job or died, and the retry finds the job or submits once."""
HEALTH_DEADLINE = 8.0
"""Seconds one health probe may take (under the JID's 10 s bound of ``/healthz``)."""
HEALTH_FAILURE_CACHE = 5.0
"""Seconds a failed probe is reported again without asking FirecREST."""
LISTING_FRESH = 60.0
"""A health probe lists jobs itself when no listing ran for this long."""


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
        retry_budget: float = 100.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        request_timeout: float = 20.0,
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
        policy = RetryPolicy(max_attempts, retry_budget, backoff_initial, backoff_max)
        self._transport = FirecrestTransport(
            self._url, self._auth, policy, request_timeout=request_timeout, verify=verify
        )
        self._logs = LogReader(self._transport, system)
        self._staging = FirecrestStaging(self._transport, system)
        self._listing = JobListing(self._transport, system, missing_lookups)
        self._unsettled: set[str] = set()
        """Job keys whose last submission went unanswered and whose job was not listed."""
        self._health_probe: asyncio.Future[str | None] | None = None
        self._health_failure: tuple[float, str] | None = None

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


    def staging_work_dir(self, config_path: Path) -> str:
        """Jobs run in ``firecrest_work_dir`` on the remote system: staging goes there."""
        return self.work_dir

    async def stage_in(self, work_dir: str, items: Sequence[StageInItem]) -> list[StagedFile]:
        """Upload the inputs through FirecREST (see ``firecrest/staging.py``)."""
        return await self._staging.stage_in(work_dir, items)

    async def stage_out(self, work_dir: str, items: Sequence[StageOutItem]) -> list[StagedFile]:
        """Download the outputs through FirecREST (see ``firecrest/staging.py``)."""
        return await self._staging.stage_out(work_dir, items)

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
        """Submit the batch script at most once; see the module doc for every outcome."""
        body = self.submission(spec)
        name = body["job"]["name"]
        log_pattern = body["job"]["standardOutput"]
        if spec.job_key in self._unsettled:
            # an earlier submission of this key went unanswered: is its job there now?
            job_id = await self._listing.find_by_name(name)
            if job_id is None:
                raise SubmissionOutcomeUnknown(
                    f"an earlier submission of {spec.job_key!r} went unanswered and FirecREST "
                    "cannot list jobs now", retry_after=UNSETTLED_RETRY)
            if job_id:
                self._unsettled.discard(spec.job_key)
                log.warning("FirecREST submit: adopted job %s of an unanswered submission", job_id)
                return Submitted(tool_id=job_id, log_path=log_pattern.replace("%j", job_id))
            self._unsettled.discard(spec.job_key)  # listed and absent: never submitted
        send = self._transport.post(f"/compute/{self.system}/jobs", body)
        try:
            resp = await self._transport.call(
                "submit", send, definite=lambda r: decode.sbatch_refusal(r) is not None,
                resend_ambiguous=False,
            )
        except OutcomeUnknown as err:
            job_id = await self._await_listed(name)
            if job_id is None:
                self._unsettled.add(spec.job_key)
                raise SubmissionOutcomeUnknown(
                    f"FirecREST submit: {err}; the job is not listed (yet), so it was not sent "
                    "again", retry_after=UNSETTLED_RETRY) from err
            log.warning("FirecREST submit: found job %s after an unanswered submission", job_id)
            return Submitted(tool_id=job_id, log_path=log_pattern.replace("%j", job_id))
        if resp.status_code in (200, 201):
            tool_id = decode.submitted_job_id(json_body("submit", resp))
            return Submitted(tool_id=tool_id, log_path=log_pattern.replace("%j", tool_id))
        reason = decode.rejection(resp)
        if reason is not None or 400 <= resp.status_code < 500:
            raise SubmissionRejected(reason or f"FirecREST refused the job: {error_text(resp)}")
        # an answer that is neither a job nor a refusal: the job may exist
        job_id = await self._await_listed(name)
        if job_id is None:
            self._unsettled.add(spec.job_key)
            raise SubmissionOutcomeUnknown(
                f"FirecREST submit answered {error_text(resp)}; the job is not listed (yet)",
                retry_after=UNSETTLED_RETRY)
        return Submitted(tool_id=job_id, log_path=log_pattern.replace("%j", job_id))

    async def _await_listed(self, name: str) -> str | None:
        """The job called ``name`` once listed, looking under the retry policy; None if never."""
        try:
            async for attempt in self._transport.policy.retrying():
                with attempt:
                    job_id = await self._listing.find_by_name(name)
                    if not job_id:  # not listed, or no listing: look again after the backoff
                        raise TransientError(f"no job named {name} listed")
                    return job_id
        except TransientError:
            return None
        return None  # pragma: no cover - tenacity always ends above

    async def find_submitted(self, job_key: str) -> Submitted | None:
        """The job an interrupted submission of ``job_key`` left, by its name; None if unlisted.

        Every job's name ends with the digest of its key (``slurm_dialect.job_name``).
        A listing that fails raises, so the JID cannot mistake "cannot tell" for
        "never submitted" and submit the job twice.
        """
        tool_id = await self._listing.find_by_suffix("-" + key_digest(job_key))
        if tool_id is None:
            return None
        try:
            log_path: str | None = await self._log_path_of(tool_id)
        except BackendError:
            log_path = None  # read_log asks the metadata again when it needs it
        return Submitted(tool_id=tool_id, log_path=log_path)

    async def statuses(self, tool_ids: list[str]) -> dict[str, BackendJobState]:
        """States of the asked jobs from one listing call (see :class:`.JobListing`)."""
        return await self._listing.statuses(tool_ids)

    async def costs(self, tool_ids: Sequence[str]) -> dict[str, CostReading]:
        """Queue wait, run time and exit code of the jobs (see :meth:`.JobListing.costs`)."""
        return await self._listing.costs(tool_ids)

    async def read_log(
        self, tool_id: str, log_path: str | None, offset: int, limit: int
    ) -> LogChunk:
        """Up to ``limit`` bytes of the log from ``offset``; a missing file reads as empty.

        The bytes are the file's own, however large the log and whatever its
        encoding (see :mod:`.log_reader`).
        """
        offset = max(offset, 0)
        if limit <= 0:
            return LogChunk(text="", offset=offset, next_offset=offset)
        path = log_path or await self._log_path_of(tool_id)
        if not SAFE_PATH.fullmatch(path):
            raise BackendError(f"log path {path!r} of job {tool_id} cannot be sent to FirecREST")
        return await self._logs.read(tool_id, path, offset, limit)

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
        send = self._transport.delete(f"/compute/{self.system}/jobs/{tool_id}")
        resp = await self._transport.call(
            "cancel", send,
            # scancel's answers for an ended job or a refused cancel: no retry changes them
            definite=lambda r: decode.mentions_ended(r) or decode.cancel_refused(r),
        )
        if resp.status_code in (200, 202, 204, 404) or decode.mentions_ended(resp):
            return
        raise BackendError(f"FirecREST cancel of job {tool_id} refused: {error_text(resp)}")

    async def health(self) -> None:
        """Raise BackendUnavailable unless FirecREST serves the system and its job listing.

        Concurrent callers share one probe; a failure is remembered for
        ``HEALTH_FAILURE_CACHE`` seconds, and a probe takes at most
        ``HEALTH_DEADLINE`` seconds, so an outage is reported at once and
        always with a reason.
        """
        failed = self._health_failure
        if failed is not None and time.monotonic() - failed[0] < HEALTH_FAILURE_CACHE:
            raise BackendUnavailable(failed[1], retry_after=HEALTH_FAILURE_CACHE)
        if self._health_probe is None or self._health_probe.done():
            self._health_probe = asyncio.ensure_future(self._probe_health())
        problem = await asyncio.shield(self._health_probe)
        if problem is not None:
            raise BackendUnavailable(problem)

    async def _probe_health(self) -> str | None:
        """One health probe: what is wrong, or None."""
        try:
            async with asyncio.timeout(HEALTH_DEADLINE):
                problem = await self._health_problem()
        except TimeoutError:
            problem = f"FirecREST health check: no answer within {HEALTH_DEADLINE:g} s"
        except BackendError as err:
            problem = str(err) or type(err).__name__
        self._health_failure = None if problem is None else (time.monotonic(), problem)
        return problem

    async def _health_problem(self) -> str | None:
        resp = await self._transport.call(
            "health check", self._transport.get("/status/systems"), attempts=2,
            timeout=HEALTH_DEADLINE / 2,
        )
        if resp.status_code != 200:
            return f"FirecREST health check: {error_text(resp)}"
        problem = decode.system_problem(json_body("health check", resp), self.system)
        if problem is not None:
            return problem
        listed = self._listing.last
        if listed is None or time.monotonic() - listed[0] > LISTING_FRESH:
            # status reads need a working listing (squeue and sacct) as much as a gateway
            with contextlib.suppress(BackendError):
                await self._listing.jobs("job listing", attempts=1, timeout=HEALTH_DEADLINE / 2)
            listed = self._listing.last
        if listed is not None and listed[1] is not None:
            return f"FirecREST job listings fail: {listed[1]}"
        return None

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._transport.close()
