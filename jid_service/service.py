"""The JID's core: submissions, the single background poller, and the readers.

Status reads (``job_statuses``, ``/wait``, ``/jobs``) are served from the store.
Only the poller asks the backend for states: once per tick, one
``backend.statuses()`` call for all active jobs, however many clients ask. A
submission or cancel *nudges* the poller (it ticks early, but never more often
than every ``MIN_TICK_GAP`` seconds). Long-poll waiters sleep on a condition the
poller notifies when a tick changed something.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jid_service.auth import Principal
from jid_service.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    JobStatus,
    SubmissionRejected,
    SubmitSpec,
)
from jid_service.errors import ApiError
from jid_service.log_text import utf8_tail
from jid_service.metrics import Metrics
from jid_service.models import ControlDocument, LogSlice, RenderedJob, TaskDuration
from jid_service.settings import JIDSettings
from jid_service.store import JobRecord, JobStore, StateUpdate
from jid_service.validation import check_document_experiment, submit_spec

log = logging.getLogger(__name__)

R = TypeVar("R")

MIN_TICK_GAP = 0.1
CLAIM_WAIT_SECONDS = 120.0
MAX_POLL_BACKOFF = 15.0
MAX_WAITERS = 1000
"""Concurrent ``/wait`` long-polls; beyond this the JID answers 503 (overload)."""
BACKEND_TIMEOUT = 120.0
"""Bound of one backend call (backends have tighter timeouts of their own)."""
SUBMIT_TIMEOUT = 300.0
MAX_LOG_CHUNKS = 64
"""``job_log_file`` reads at most this many ``log_max_bytes`` chunks to reach the end."""
HEALTH_CACHE_SECONDS = 2.0
"""``/healthz`` needs no token: while healthy, probe at most this often, whoever asks."""
OUTPUT_FIELDS = ("status", "tool_id", "raw_status", "exit_code")


def stored_document(doc: ControlDocument) -> dict[str, Any]:
    """The caller's document as stored: ARP key names, output fields left out."""
    data = doc.model_dump(mode="json", by_alias=True)
    for key in OUTPUT_FIELDS:
        data.pop(key, None)
    return data


def sent_document(doc: ControlDocument) -> dict[str, Any]:
    """A document echoed back unchanged (a job this JID does not know)."""
    return doc.model_dump(mode="json", by_alias=True)


class JobService:
    """Submit, follow, read and cancel jobs through one backend and one store."""

    def __init__(self, settings: JIDSettings, backend: Backend, store: JobStore,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.backend = backend
        self.store = store
        self.metrics = metrics
        self.generation = 0
        """Bumped whenever a poll tick changed a job's state."""
        self.backend_error: BackendUnavailable | None = None
        """Set while the poller cannot reach the backend."""
        self.ticks = 0
        self._changed: asyncio.Condition | None = None
        self._nudge: asyncio.Event | None = None
        self._claims: dict[str, asyncio.Event] = {}
        self._poller: asyncio.Task[None] | None = None
        self._waiters = 0
        self._health: tuple[float, tuple[bool, bool, str | None]] | None = None
        self._health_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------ lifecycle ---
    async def start(self) -> None:
        """Recover from a previous run and start the poller."""
        self._changed = asyncio.Condition()
        self._nudge = asyncio.Event()
        self._health_lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        self.backend.on_change = lambda: loop.call_soon_threadsafe(self.nudge)
        await self._recover_interrupted_claims()
        self._poller = asyncio.create_task(self._poll_loop(), name="jid-poller")

    async def _recover_interrupted_claims(self) -> None:
        """Settle the submissions a previous daemon died in the middle of.

        A job the backend finds is recorded; a claim the backend can show was
        never submitted is dropped, so the client's retry submits it. Claims the
        backend cannot settle (no lookup, or unreachable now) are FAILED: a job
        must never run twice.
        """
        for job_id in await self._db(self.store.interrupted_claims):
            try:
                found = await self._backend("find_submitted",
                                            self.backend.find_submitted(job_id))
            except (NotImplementedError, BackendError) as exc:
                log.warning("cannot settle interrupted submission %s: %s", job_id,
                            type(exc).__name__)
                continue
            if found is None:
                await self._db(self.store.drop_claim, job_id)
                log.info("interrupted submission %s was never submitted: dropped", job_id)
            else:
                await self._db(self.store.complete_claim, job_id, found.tool_id,
                               found.log_path, "RECOVERED")
                log.info("interrupted submission %s recovered as job %s", job_id,
                         found.tool_id)
        failed = await self._db(self.store.fail_interrupted_claims)
        if failed:
            log.warning("%d submission(s) interrupted by a previous stop marked FAILED", failed)

    async def stop(self) -> None:
        """Stop the poller and release the backend and the store."""
        if self._poller is not None:
            while not self._poller.done():
                self._poller.cancel()
                await asyncio.wait({self._poller}, timeout=1.0)
            self._poller = None
        await self.backend.aclose()
        await asyncio.to_thread(self.store.close)

    @staticmethod
    async def _db(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # --------------------------------------------------------------- poller ---
    def nudge(self) -> None:
        """Ask the poller to tick soon."""
        if self._nudge is not None:
            self._nudge.set()

    async def poll_once(self) -> int:
        """One tick: let the backend work, ask it for every active job's state, store changes.

        Returns how many jobs changed.
        """
        await self._backend("tick", self.backend.tick())
        active = await self._db(self.store.active)
        self.metrics.active_jobs.set(len(active))
        if not active:
            return 0
        states = await self._backend("statuses",
                                     self.backend.statuses([job.tool_id for job in active]))
        updates = []
        for job in active:
            state = states.get(job.tool_id)
            if state is None:
                continue
            if (state.status.value, state.raw_status, state.exit_code) != (
                job.status, job.raw_status, job.exit_code
            ):
                updates.append(StateUpdate(job.id, state.status.value, state.raw_status,
                                           state.exit_code))
        changed = await self._db(self.store.apply, updates) if updates else 0
        if changed:
            await self._notify()
        return changed

    async def _backend(self, operation: str, call: Awaitable[R],
                       timeout: float = BACKEND_TIMEOUT) -> R:
        """Await one backend call, counted and timed; a hung call counts as unavailable."""
        async with self.metrics.backend_call(operation):
            try:
                async with asyncio.timeout(timeout):
                    return await call
            except TimeoutError:
                raise BackendUnavailable(
                    f"backend {operation} took longer than {timeout:g} s", retry_after=10
                ) from None

    async def _until_changed(self, generation: int, timeout: float) -> None:
        """Sleep until a tick changed something after ``generation``, or ``timeout``."""
        assert self._changed is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.generation != generation)

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def _poll_loop(self) -> None:
        assert self._nudge is not None
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            try:
                await self.poll_once()
                self.ticks += 1
                failures = 0
                self.backend_error = None
                self.metrics.poll_ticks.labels("ok").inc()
            except BackendUnavailable as err:
                failures += 1
                self.backend_error = err
                self.metrics.poll_ticks.labels("unavailable").inc()
                log.warning("poll tick: backend unavailable: %s", err)
            except Exception:
                failures += 1
                self.metrics.poll_ticks.labels("error").inc()
                log.exception("poll tick failed")
            delay = self.settings.poll_interval * (2 ** min(failures, 4))
            delay = min(delay, max(MAX_POLL_BACKOFF, self.settings.poll_interval))
            # ticks start every ``delay`` seconds; a nudge brings the next one
            # forward, but never closer than MIN_TICK_GAP to the last one
            gap = min(MIN_TICK_GAP, delay) - (loop.time() - started)
            if gap > 0:
                await asyncio.sleep(gap)
            remaining = delay - (loop.time() - started)
            if remaining > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                # a cancellation that races with the awaited event, and the poller
                # would then never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._nudge.wait()
            self._nudge.clear()

    def require_fresh(self) -> None:
        """503 while the poller cannot reach the backend (stored states may be stale)."""
        err = self.backend_error
        if err is not None:
            raise ApiError(503, f"backend unavailable: {err}",
                           {"Retry-After": str(max(1, round(err.retry_after)))})

    # ---------------------------------------------------------- submissions ---
    @staticmethod
    def check_caller(principal: Principal, experiment: str, doc: ControlDocument) -> None:
        """Token rules for a document posted under ``experiment``."""
        principal.require_experiment(experiment)
        run_as = doc.definition.run_as_user
        if run_as and run_as != principal.user and not principal.admin:
            raise ApiError(403, f"def.run_as_user {run_as!r} is not the token's user")

    async def start_job(self, principal: Principal, experiment: str,
                        doc: ControlDocument) -> dict[str, Any]:
        """Submit ``doc`` once: a repeated ``_id`` returns the stored job."""
        self.check_caller(principal, experiment, doc)
        check_document_experiment(doc, experiment)
        spec: SubmitSpec | None = None
        for _attempt in range(3):
            existing = await self._db(self.store.get, doc.id)
            if existing is None:
                # validate only what is new: a retry of a stored job gets that job
                # back even if, say, its config file has gone since
                spec = spec or submit_spec(doc, experiment, principal.user, self.settings)
                if await self._db(self.store.claim, stored_document(doc), doc.experiment,
                                  spec.user):
                    return await self._submit_claimed(doc.id, spec)
                existing = await self._db(self.store.get, doc.id)
                if existing is None:
                    continue  # the twin's submission failed meanwhile: try ours
            if existing.experiment != experiment:
                raise ApiError(409, f"_id {doc.id!r} belongs to another experiment's job")
            if existing.claimed_only:
                existing = await self._wait_for_claim(doc.id)
                if existing is None:
                    continue
            return existing.to_document()
        raise ApiError(503, "concurrent submissions of this _id keep failing; retry",
                       {"Retry-After": "5"})

    async def _submit_claimed(self, job_id: str, spec: SubmitSpec) -> dict[str, Any]:
        event = self._claims.setdefault(job_id, asyncio.Event())
        try:
            try:
                submitted = await self._backend("submit", self.backend.submit(spec),
                                                SUBMIT_TIMEOUT)
            except BackendUnavailable as err:
                await self._db(self.store.drop_claim, job_id)
                raise ApiError(503, f"backend unavailable: {err}",
                               {"Retry-After": str(max(1, round(err.retry_after)))}) from None
            except SubmissionRejected as err:
                await self._db(self.store.drop_claim, job_id)
                raise ApiError(422, f"the scheduler rejected the job: {err}") from None
            except BaseException:
                await self._db(self.store.drop_claim, job_id)
                raise
            await self._db(self.store.complete_claim, job_id, submitted.tool_id,
                           submitted.log_path, "SUBMITTED")
        finally:
            event.set()
            self._claims.pop(job_id, None)
        self.nudge()
        record = await self._db(self.store.get, job_id)
        assert record is not None
        return record.to_document()

    async def _wait_for_claim(self, job_id: str) -> JobRecord | None:
        """Wait for a twin request's submission; the record, or None if it failed."""
        event = self._claims.get(job_id)
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        while time.monotonic() < deadline:
            if event is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await event.wait()
            else:
                # claimed by another process sharing the store: look again shortly
                await asyncio.sleep(0.2)
            record = await self._db(self.store.get, job_id)
            if record is None or not record.claimed_only:
                return record
            event = self._claims.get(job_id)
        raise ApiError(503, "the submission of this _id is still in progress",
                       {"Retry-After": "5"})

    def render(self, principal: Principal, experiment: str, doc: ControlDocument) -> RenderedJob:
        """The exact submission, without submitting or storing anything."""
        self.check_caller(principal, experiment, doc)
        spec = submit_spec(doc, experiment, principal.user, self.settings)
        rendering = self.backend.render(spec)
        return RenderedJob(backend=rendering.backend, argv=rendering.argv,
                           script=rendering.script)

    # -------------------------------------------------------------- readers ---
    async def statuses(self, principal: Principal,
                       docs: list[ControlDocument]) -> list[dict[str, Any]]:
        """The documents with their stored status; jobs the token may not see are left out."""
        self.require_fresh()
        rows = await self._db(self.store.get_many, [d.id for d in docs])
        out: list[dict[str, Any]] = []
        for doc in docs:
            row = rows.get(doc.id)
            if row is not None:
                if principal.may_see(row.experiment):
                    out.append(row.to_document())
            elif principal.may_see(doc.experiment):
                out.append(sent_document(doc))
        return out

    async def wait(self, principal: Principal, docs: list[ControlDocument],
                   timeout: float) -> list[dict[str, Any]]:
        """Return as soon as any job's status differs from the one sent, or at ``timeout``."""
        assert self._changed is not None
        if self._waiters >= MAX_WAITERS:
            raise ApiError(503, "too many concurrent waits; retry", {"Retry-After": "5"})
        self._waiters += 1
        try:
            return await self._wait(principal, docs, timeout)
        finally:
            self._waiters -= 1

    async def _wait(self, principal: Principal, docs: list[ControlDocument],
                    timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        sent = {doc.id: (doc.status.value if isinstance(doc.status, JobStatus) else doc.status)
                for doc in docs}
        while True:
            generation = self.generation
            fresh = await self.statuses(principal, docs)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or any(d["status"] != sent.get(d["_id"]) for d in fresh):
                return fresh
            await self._until_changed(generation, remaining)

    async def record_for(self, principal: Principal, experiment: str,
                         doc: ControlDocument) -> JobRecord:
        """The stored job ``doc`` names, posted under ``experiment``; 404 when unknown."""
        principal.require_experiment(experiment)
        check_document_experiment(doc, experiment)
        record = await self._db(self.store.get, doc.id)
        if record is None or record.experiment != experiment:
            raise ApiError(404, f"no job with _id {doc.id!r} in experiment {experiment!r}")
        return record

    async def log_slice(self, record: JobRecord, offset: int, limit: int) -> LogSlice:
        """Part of a job's log; ``complete`` once the job ended and the log was read."""
        if record.tool_id is None:
            return LogSlice(text="", offset=offset, next_offset=offset, complete=False)
        finished = record.finished
        chunk = await self._backend(
            "read_log", self.backend.read_log(record.tool_id, record.log_path, offset, limit)
        )
        read = chunk.next_offset - chunk.offset
        # a chunk is short only at the end of the file (up to 3 bytes of a cut
        # UTF-8 character may be held back for the next read)
        complete = finished and (read == 0 or read < limit - 3)
        return LogSlice(text=chunk.text, offset=chunk.offset, next_offset=chunk.next_offset,
                        complete=complete)

    async def whole_log(self, record: JobRecord) -> str:
        """The job's log text; of a log above ``log_max_bytes``, its end (where errors are)."""
        if record.tool_id is None:
            return ""
        limit = self.settings.log_max_bytes
        offset, previous, text = 0, "", ""
        for _ in range(MAX_LOG_CHUNKS):
            chunk = await self._backend(
                "read_log", self.backend.read_log(record.tool_id, record.log_path, offset, limit)
            )
            read = chunk.next_offset - chunk.offset
            previous, text = text, chunk.text
            offset = chunk.next_offset
            if read < limit - 3:  # short: the end of the file
                break
        if offset <= limit:
            return previous + text
        tail = utf8_tail(previous + text, limit)
        omitted = offset - len(tail.encode())
        return f"[... the first {omitted} bytes of the log omitted ...]\n{tail}"

    async def kill(self, record: JobRecord) -> dict[str, Any]:
        """Cancel the job and wait (bounded) until the poller sees it ended."""
        if record.finished:
            return record.to_document()
        if record.tool_id is None:
            raise ApiError(409, "the job is still being submitted; retry", {"Retry-After": "2"})
        await self._backend("cancel", self.backend.cancel(record.tool_id))
        assert self._changed is not None
        deadline = time.monotonic() + self.settings.kill_wait_seconds
        while True:
            generation = self.generation
            self.nudge()
            current = await self._db(self.store.get, record.id)
            assert current is not None
            remaining = deadline - time.monotonic()
            if current.finished or remaining <= 0:
                return current.to_document()
            await self._until_changed(generation, remaining)

    async def typical_duration(self, principal: Principal, experiment: str,
                               doc: ControlDocument) -> TaskDuration:
        """The median duration of the newest DONE jobs of the step ``doc`` describes."""
        principal.require_experiment(experiment)
        check_document_experiment(doc, experiment)
        task = doc.definition.name
        durations = await self._db(self.store.recent_durations, experiment, task,
                                   doc.definition.parameters)
        return TaskDuration(task=task, runs=len(durations),
                            median_seconds=statistics.median(durations) if durations else None)

    async def list_jobs(self, principal: Principal, experiment: str | None,
                        arp_root_job_id: str | None, status: str | None,
                        limit: int) -> list[dict[str, Any]]:
        """Stored jobs matching the filters that the token may see."""
        if experiment is not None:
            principal.require_experiment(experiment)
        records = await self._db(self.store.query, principal.experiments, experiment,
                                 arp_root_job_id, status, limit)
        return [r.to_document() for r in records]

    async def health(self) -> tuple[bool, bool, str | None]:
        """(backend ok, store ok, detail), probed at most every HEALTH_CACHE_SECONDS."""
        assert self._health_lock is not None
        async with self._health_lock:
            cached = self._health
            if cached is not None and time.monotonic() - cached[0] < HEALTH_CACHE_SECONDS:
                return cached[1]
            result = await self._probe_health()
            # only a good answer is reused: a recovery shows at the next probe
            self._health = (time.monotonic(), result) if result[0] and result[1] else None
            return result

    async def _probe_health(self) -> tuple[bool, bool, str | None]:
        backend_ok, store_ok, detail = True, True, None
        try:
            async with self.metrics.backend_call("health"):
                async with asyncio.timeout(10):
                    await self.backend.health()
        except (BackendUnavailable, TimeoutError) as err:
            backend_ok, detail = False, f"backend: {err or 'timed out'}"
        except Exception as err:  # a health probe reports, it does not fail
            backend_ok, detail = False, f"backend: {type(err).__name__}: {err}"
        try:
            async with asyncio.timeout(10):
                await self._db(self.store.ping)
        except Exception as err:
            store_ok = False
            detail = (detail + "; " if detail else "") + f"store: {type(err).__name__}"
        return backend_ok, store_ok, detail

    async def refresh_job_metrics(self) -> None:
        """Publish per-status job counts."""
        self.metrics.set_job_counts(await self._db(self.store.count_by_status))
