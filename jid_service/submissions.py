"""What changes a job at the backend: submissions (claimed once per ``_id``) and cancels.

A submission first *claims* its ``_id`` in the store; only the request holding
the claim calls the backend, and a twin request waits for its outcome. Claims a
previous daemon left behind are settled at start-up; on a store that several
replicas share, the polling replica settles the claims of dead replicas only
(a live one may be submitting right now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from jid_service.auth import Principal
from jid_service.backend_call import call_backend
from jid_service.backends.base import (
    BackendError,
    SubmissionOutcomeUnknown,
    SubmitSpec,
)
from jid_service.context import JobContext, ServicePart
from jid_service.errors import (
    ConflictError,
    UnavailableError,
)
from jid_service.models import ControlDocument, RenderedJob
from jid_service.poller import Poller
from jid_service.replica import SharedReplica
from jid_service.staging import StagingPlan
from jid_service.store import JobRecord
from jid_service.validation import check_document_experiment, submit_spec

log = logging.getLogger(__name__)

CLAIM_WAIT_SECONDS = 120.0
SUBMIT_TIMEOUT = 300.0
SETTLE_INTERVAL = 5.0
"""How often a submission whose answer was lost is looked for at the backend."""
ORPHAN_SCAN_SECONDS = 10.0
"""How often the polling replica looks for the claims of dead replicas."""
OUTPUT_FIELDS = ("status", "tool_id", "raw_status", "exit_code", "staged", "staging_error")


def stored_document(doc: ControlDocument) -> dict[str, Any]:
    """The caller's document as stored: ARP key names, output fields left out."""
    data = doc.model_dump(mode="json", by_alias=True)
    for key in OUTPUT_FIELDS:
        data.pop(key, None)
    return data


def check_caller(principal: Principal, experiment: str, doc: ControlDocument) -> None:
    """Token rules for a document posted under ``experiment``.

    ``def.run_as_user`` is recorded but grants nothing: no backend switches
    Unix user, and LUTE's operator sends the Airflow worker's account there.
    The job belongs to the token's user.
    """
    principal.require_experiment(experiment)
    principal.require_run(doc.arp_root_job_id)


class Submissions(ServicePart):
    """Submit (idempotent on ``_id``), render and cancel jobs."""

    def __init__(self, context: JobContext, poller: Poller) -> None:
        super().__init__(context)
        self.poller = poller
        self._claims: dict[str, asyncio.Event] = {}
        self._in_flight: set[asyncio.Task[dict[str, Any]]] = set()
        self._settling: set[asyncio.Task[None]] = set()
        self._orphan_scan: asyncio.Task[None] | None = None
        self._last_orphan_scan = -ORPHAN_SCAN_SECONDS

    async def recover_interrupted_claims(self) -> None:
        """Settle the submissions a previous daemon died in the middle of.

        A job the backend finds is recorded; a claim the backend can show was
        never submitted is dropped, so the client's retry submits it. Claims the
        backend cannot settle (no lookup, or unreachable now) are FAILED: a job
        must never run twice.
        """
        await self._settle_claims(await asyncio.to_thread(self.store.interrupted_claims))
        failed = await asyncio.to_thread(self.store.fail_interrupted_claims)
        if failed:
            log.warning("%d submission(s) interrupted by a previous stop marked FAILED", failed)

    def settle_orphan_claims_soon(self) -> None:
        """(Polling replica) settle dead replicas' claims, at most every ORPHAN_SCAN_SECONDS."""
        now = time.monotonic()
        if self._orphan_scan is not None or now - self._last_orphan_scan < ORPHAN_SCAN_SECONDS:
            return
        self._last_orphan_scan = now
        task = asyncio.get_running_loop().create_task(self._settle_orphan_claims(),
                                                      name="jid-orphan-claims")
        self._orphan_scan = task
        task.add_done_callback(lambda _t: setattr(self, "_orphan_scan", None))

    async def _settle_orphan_claims(self) -> None:
        """As at a start, for the claims whose replica is dead (no heartbeat, or left)."""
        replica = self.replica
        assert isinstance(replica, SharedReplica)
        try:
            orphans = await asyncio.to_thread(replica.registry.orphan_claims)
            if orphans:
                log.info("settling %d claim(s) of replicas that are gone", len(orphans))
                await self._settle_claims(orphans)
                failed = await asyncio.to_thread(replica.registry.fail_orphan_claims, orphans)
                if failed:
                    log.warning("%d submission(s) of replicas that are gone marked FAILED",
                                failed)
            await asyncio.to_thread(replica.registry.forget_settled_owners)
        except Exception:
            log.exception("settling the claims of replicas that are gone failed")

    async def _settle_claims(self, job_ids: list[str]) -> None:
        """Record or drop each claim the backend can settle; the rest are left as they are."""
        for job_id in job_ids:
            try:
                found = await call_backend(self.metrics, "find_submitted",
                                           self.backend.find_submitted(job_id))
            except (NotImplementedError, BackendError) as exc:
                log.warning("cannot settle interrupted submission %s: %s", job_id,
                            type(exc).__name__)
                continue
            if found is None:
                await asyncio.to_thread(self.store.drop_claim, job_id)
                log.info("interrupted submission %s was never submitted: dropped", job_id)
            else:
                await asyncio.to_thread(self.store.complete_claim, job_id, found.tool_id,
                                        found.log_path, "RECOVERED")
                log.info("interrupted submission %s recovered as job %s", job_id,
                         found.tool_id)

    async def start_job(self, principal: Principal, experiment: str,
                        doc: ControlDocument) -> dict[str, Any]:
        """Submit ``doc`` once: a repeated ``_id`` returns the stored job."""
        check_caller(principal, experiment, doc)
        check_document_experiment(doc, experiment)
        spec: SubmitSpec | None = None
        plan: StagingPlan | None = None
        for _attempt in range(3):
            existing = await asyncio.to_thread(self.store.get, doc.id)
            if existing is None:
                # validate only what is new: a retry of a stored job gets that job
                # back even if, say, its config file has gone since
                spec = spec or submit_spec(doc, experiment, principal.user, self.settings)
                plan = plan or self.poller.staging.plan(doc.definition)
                # the job belongs to the token's user, whatever run_as_user says
                if await asyncio.to_thread(self.store.claim, stored_document(doc),
                                           doc.experiment, principal.user):
                    await self._own_claim(doc.id)
                    return await self._submit_claimed(doc.id, spec, plan)
                existing = await asyncio.to_thread(self.store.get, doc.id)
                if existing is None:
                    continue  # the twin's submission failed meanwhile: try ours
            if existing.experiment != experiment:
                raise ConflictError(f"_id {doc.id!r} belongs to another experiment's job")
            if existing.claimed_only:
                existing = await self._wait_for_claim(doc.id)
                if existing is None:
                    continue
            return existing.to_document()
        raise UnavailableError("concurrent submissions of this _id keep failing; retry",
                               retry_after=5)

    async def _own_claim(self, job_id: str) -> None:
        """Record this replica as the claim's holder; without that, submit nothing."""
        try:
            await self.replica.own_claim(job_id)
        except BaseException:
            await asyncio.to_thread(self.store.drop_claim, job_id)
            raise

    async def _submit_claimed(self, job_id: str, spec: SubmitSpec,
                              plan: StagingPlan) -> dict[str, Any]:
        # The submission runs as its own task, shielded from the request: a
        # request cut off while the JID stops leaves it to finish (see drain).
        task = asyncio.create_task(self._submit_and_record(job_id, spec, plan),
                                   name=f"jid-submit-{job_id}")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await asyncio.shield(task)

    async def drain(self, timeout: float) -> None:
        """Let the submissions in flight finish (for up to ``timeout`` seconds).

        One still unfinished then is cancelled with its claim kept: the next
        start settles it (:meth:`recover_interrupted_claims`), as after a crash.
        """
        for settling in self._settling:
            settling.cancel()  # their claims stay: the next start settles them
        if self._orphan_scan is not None:
            self._orphan_scan.cancel()
        pending = set(self._in_flight)
        if not pending:
            return
        log.info("waiting for %d submission(s) in flight", len(pending))
        _done, left = await asyncio.wait(pending, timeout=timeout)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
            log.warning("%d submission(s) unfinished at stop: settled at the next start",
                        len(left))

    async def _submit_and_record(self, job_id: str, spec: SubmitSpec,
                                 plan: StagingPlan) -> dict[str, Any]:
        event = self._claims.setdefault(job_id, asyncio.Event())
        try:
            try:
                # inputs first: a job must never start without them
                staged = await self.poller.staging.stage_in(spec, plan)
                submitted = await call_backend(self.metrics, "submit",
                                               self.backend.submit(spec), SUBMIT_TIMEOUT)
            except asyncio.CancelledError:
                # only a stop cancels a submission: whether sbatch got it is
                # unknown, so the claim stays for the next start to settle
                raise
            except SubmissionOutcomeUnknown as err:
                # the job may exist: keep the claim until the backend can tell
                self._settle_later(job_id, min(err.retry_after, SETTLE_INTERVAL))
                raise
            except BaseException:
                # whatever failed, the claim goes: the client's retry claims the _id again
                await asyncio.to_thread(self.store.drop_claim, job_id)
                raise
            if staged:
                await asyncio.to_thread(self.store.record_staging, job_id,
                                        [f.model_dump() for f in staged])
            await asyncio.to_thread(self.store.complete_claim, job_id, submitted.tool_id,
                                    submitted.log_path, "SUBMITTED")
        finally:
            event.set()
            self._claims.pop(job_id, None)
        self.poller.nudge()
        record = await asyncio.to_thread(self.store.get, job_id)
        assert record is not None
        return record.to_document()

    def _settle_later(self, job_id: str, delay: float) -> None:
        """Ask the backend every ``delay`` seconds whether a lost submission made a job.

        A job it finds is recorded; a submission it can show never happened is
        dropped, so the client's retry submits it; until then the claim holds
        the ``_id``. A daemon that stops meanwhile leaves the claim to its
        successor's start-up recovery.
        """
        async def settle() -> None:
            while True:
                await asyncio.sleep(delay)
                try:
                    found = await call_backend(self.metrics, "find_submitted",
                                               self.backend.find_submitted(job_id))
                except BackendError:
                    continue
                except Exception:
                    log.exception("looking for the lost submission of %s failed", job_id)
                    continue
                if found is None:
                    await asyncio.to_thread(self.store.drop_claim, job_id)
                else:
                    await asyncio.to_thread(self.store.complete_claim, job_id, found.tool_id,
                                            found.log_path, "SUBMITTED")
                    self.poller.nudge()
                return

        task = asyncio.get_running_loop().create_task(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

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
            record = await asyncio.to_thread(self.store.get, job_id)
            if record is None or not record.claimed_only:
                return record
            event = self._claims.get(job_id)
        raise UnavailableError("the submission of this _id is still in progress",
                               retry_after=5)

    def render(self, principal: Principal, experiment: str, doc: ControlDocument) -> RenderedJob:
        """The exact submission, without submitting or storing anything."""
        check_caller(principal, experiment, doc)
        spec = submit_spec(doc, experiment, principal.user, self.settings)
        self.poller.staging.plan(doc.definition)
        rendering = self.backend.render(spec)
        return RenderedJob(backend=rendering.backend, argv=rendering.argv,
                           script=rendering.script)

    async def kill(self, record: JobRecord) -> dict[str, Any]:
        """Cancel the job and wait (bounded) until the poller sees it ended."""
        if record.finished:
            return record.to_document()
        if record.tool_id is None:
            raise ConflictError("the job is still being submitted; retry", retry_after=2)
        await call_backend(self.metrics, "cancel", self.backend.cancel(record.tool_id))

        async def current() -> JobRecord:
            self.poller.nudge()
            found = await asyncio.to_thread(self.store.get, record.id)
            assert found is not None
            return found

        ended = await self.poller.watch(current, lambda r: r.finished,
                                        self.settings.kill_wait_seconds)
        return ended.to_document()
