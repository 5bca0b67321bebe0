"""The single background poller: the only place that asks the backend for job states.

Once per tick, one ``backend.statuses()`` call for all active jobs, however
many clients ask. A submission or cancel *nudges* the poller (it ticks early,
but never more often than every ``MIN_TICK_GAP`` seconds). Readers that wait
for a change sleep on a condition the poller notifies when a tick changed
something.

A job that declared ``def.stage_out`` is not DONE when the scheduler says so:
the poller holds it RUNNING (raw status ``STAGING_OUT``) while its outputs are
copied in a task of their own, then stores it DONE, or FAILED with raw status
``STAGE_OUT_FAILED`` and the reason in its document's ``staging_error``. A
gateway outage meanwhile leaves it to be tried again at a later tick, and so
does a daemon restart.

Replicas on one PostgreSQL store poll one at a time: at every tick a replica
asks its :mod:`~jid_service.replica` whether it holds the poller lock. The
holder polls and reports each tick in the store; the others stand by, answer
reads as fresh as that report says, and wake their watchers when the change
feed (or the report) says the holder stored a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from jid_service.backend_call import call_backend
from jid_service.backends.base import BackendUnavailable
from jid_service.change_feed import CHANGED, NUDGE
from jid_service.context import JobContext, ServicePart
from jid_service.errors import UnavailableError
from jid_service.job_costs import JobCosts
from jid_service.replica import Staleness, staleness
from jid_service.staging import (
    STAGE_OUT_FAILED_RAW_STATUS,
    STAGING_OUT_RAW_STATUS,
    Staging,
    wants_stage_out,
)
from jid_service.store import ActiveJob, StateUpdate
from lute.job_status import JobStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

MIN_TICK_GAP = 0.1
MAX_POLL_BACKOFF = 15.0


class Poller(ServicePart):
    """Follows every active job of the store through one backend."""

    def __init__(self, context: JobContext) -> None:
        super().__init__(context)
        self.generation = 0
        """Bumped whenever a poll tick changed a job's state."""
        self.backend_error: BackendUnavailable | None = None
        """Set while the poller cannot reach the backend."""
        self.ticks = 0
        self.released = False
        """Set when the JID stops: open watches answer at once."""
        self._changed = asyncio.Condition()
        self._nudge = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self.staging = Staging(context)
        self._staging_out: dict[str, asyncio.Task[None]] = {}
        self.costs = JobCosts(context)
        """What finished jobs cost: noted as they finish, read at later ticks."""
        self.standby_stale: Staleness | None = None
        """Set while this replica stands by and the polling one's report is not fresh."""
        self._seen_change: float | None = None
        self.on_lead: Callable[[], None] | None = None
        """Called after each tick this replica polled (the service settles dead claims)."""

    def start(self) -> None:
        """Start ticking; a backend that learns of changes by itself nudges the poller."""
        loop = asyncio.get_running_loop()
        self.backend.on_change = lambda: loop.call_soon_threadsafe(self.nudge)
        self._task = asyncio.create_task(self._loop(), name="jid-poller")

    async def stop(self) -> None:
        """Stop ticking (a tick in progress is cancelled)."""
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            self._task = None
        for task in list(self._staging_out.values()):
            task.cancel()  # the job stays RUNNING/STAGING_OUT: the next start stages again
        if self._staging_out:
            await asyncio.wait(list(self._staging_out.values()), timeout=5.0)

    def release_watchers(self) -> None:
        """Answer every open (releasable) watch now with what it reads, and any later one at once.

        The JID is stopping: a long poll held open would only be cut off later.
        """
        if self.released:
            return
        self.released = True
        self._release_task = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _wake_watchers(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    def nudge(self) -> None:
        """Ask the poller to tick soon (the polling replica, when this one stands by)."""
        self._nudge.set()
        if not self.replica.leader:
            self.replica.tell(NUDGE)

    async def hear(self, kind: str) -> None:
        """Another replica's notification: wake the watchers; a nudge, tick soon if polling."""
        if kind == NUDGE and self.replica.leader:
            self._nudge.set()
        await self._wake_watchers()

    def require_fresh(self) -> None:
        """UnavailableError while the poller cannot reach the backend (states may be stale)."""
        if not self.replica.leader:
            stale = self.standby_stale
            if stale is not None:
                raise UnavailableError(stale.message, retry_after=stale.retry_after)
            return
        err = self.backend_error
        if err is not None:
            raise UnavailableError(f"backend unavailable: {err}", retry_after=err.retry_after)

    async def poll_once(self) -> int:
        """One tick: let the backend work, ask it for every active job's state, store changes.

        Returns how many jobs changed.
        """
        await call_backend(self.metrics, "tick", self.backend.tick())
        await self.costs.collect()  # of jobs that finished at earlier ticks; never raises
        active = await asyncio.to_thread(self.store.active)
        self.metrics.active_jobs.set(len(active))
        if not active:
            return 0
        states = await call_backend(self.metrics, "statuses",
                                    self.backend.statuses([job.tool_id for job in active]))
        updates = []
        done = []
        for job in active:
            state = states.get(job.tool_id)
            if state is None or job.id in self._staging_out:
                continue
            if (state.status.value, state.raw_status, state.exit_code) != (
                job.status, job.raw_status, job.exit_code
            ):
                update = StateUpdate(job.id, state.status.value, state.raw_status,
                                     state.exit_code)
                (done if state.status is JobStatus.DONE else updates).append(update)
        updates += await self._start_stage_outs(active, done)
        return await self._store_updates(updates)

    async def _store_updates(self, updates: list[StateUpdate]) -> int:
        changed = await asyncio.to_thread(self.store.apply, updates) if updates else 0
        self.costs.note(updates)
        if changed:
            self.metrics.state_changes.inc(changed)
            await self._wake_watchers()
            self.replica.tell(CHANGED)
        return changed

    async def _start_stage_outs(self, active: list[ActiveJob],
                                done: list[StateUpdate]) -> list[StateUpdate]:
        """The updates of DONE jobs: as they are, or RUNNING while their outputs are copied."""
        if not done:
            return []
        records = await asyncio.to_thread(self.store.get_many, [u.id for u in done])
        current = {job.id: job for job in active}
        out = []
        for update in done:
            record = records.get(update.id)
            if record is None or not wants_stage_out(record.document):
                out.append(update)
                continue
            task = asyncio.create_task(self._stage_out(record.document, update),
                                       name=f"jid-stage-out-{update.id}")
            self._staging_out[update.id] = task
            task.add_done_callback(lambda _t, key=update.id: self._staging_out.pop(key, None))
            if current[update.id].raw_status != STAGING_OUT_RAW_STATUS:
                out.append(StateUpdate(update.id, JobStatus.RUNNING.value,
                                       STAGING_OUT_RAW_STATUS, None))
        return out

    async def _stage_out(self, document: dict[str, Any], done: StateUpdate) -> None:
        try:
            staged, error = await self.staging.stage_out(document)
        except BackendUnavailable as err:
            log.warning("job %s: stage-out waits for the backend: %s", done.id, err)
            return  # still RUNNING/STAGING_OUT: a later tick tries again
        except Exception:
            log.exception("job %s: stage-out failed", done.id)
            staged, error = [], "stage-out failed: internal error (see the JID's log)"
        await asyncio.to_thread(self.store.record_staging, done.id,
                                [f.model_dump() for f in staged], error)
        final = done if error is None else StateUpdate(
            done.id, JobStatus.FAILED.value, STAGE_OUT_FAILED_RAW_STATUS, done.exit_code)
        await self._store_updates([final])
        self.nudge()

    async def watch(self, read: Callable[[], Awaitable[T]], settled: Callable[[T], bool],
                    timeout: float, *, releasable: bool = False) -> T:
        """``read()`` until its answer is ``settled`` or ``timeout`` passed.

        Reads again only after a tick changed something, so a watcher costs
        nothing between changes. A ``releasable`` watch also ends, with a fresh
        read, when :meth:`release_watchers` is called (the JID is stopping).
        """
        deadline = time.monotonic() + timeout
        while True:
            generation = self.generation
            value = await read()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or settled(value) or (releasable and self.released):
                return value
            await self._until_changed(generation, remaining, releasable)

    async def _until_changed(self, generation: int, timeout: float, releasable: bool) -> None:
        """Sleep until a tick changed something after ``generation``, a release, or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(
                    lambda: self.generation != generation or (releasable and self.released))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            try:
                leading = await self.replica.lead()
            except Exception:
                log.exception("cannot tell whether this replica polls")
                leading = False
            self.metrics.poller_leader.set(1 if leading else 0)
            if leading:
                failures = await self._poll_tick(failures)
            else:
                failures = 0
                self.metrics.poll_ticks.labels("standby").inc()
                await self._standby_tick()
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

    async def _poll_tick(self, failures: int) -> int:
        """One tick of the polling replica; returns the count of failures in a row."""
        ok, changed, error = False, 0, None
        try:
            changed = await self.poll_once()
            ok = True
            self.ticks += 1
            failures = 0
            self.backend_error = None
            self.metrics.poll_ticks.labels("ok").inc()
            self.metrics.backend_available.set(1)
            self.metrics.last_tick.set_to_current_time()
        except BackendUnavailable as err:
            failures += 1
            error = self.backend_error = err
            self.metrics.backend_available.set(0)
            self.metrics.poll_ticks.labels("unavailable").inc()
            log.warning("poll tick: backend unavailable: %s", err)
        except Exception:
            failures += 1
            self.metrics.poll_ticks.labels("error").inc()
            log.exception("poll tick failed")
        await self.replica.report_tick(ok, None if error is None else str(error),
                                       None if error is None else error.retry_after,
                                       changed > 0)
        if self.on_lead is not None:
            self.on_lead()
        return failures

    async def _standby_tick(self) -> None:
        """Follow the polling replica's report: freshness, and changes the feed may have missed."""
        try:
            state = await self.replica.standby_view()
        except Exception as err:
            self.standby_stale = Staleness(f"store unavailable: {type(err).__name__}", 5.0)
            return
        self.standby_stale = staleness(state, self.settings.poll_interval)
        if state is not None and state.tick_ok_at is not None:
            # the gauge (and the alert on it) follows the poller this replica follows
            self.metrics.last_tick.set(state.tick_ok_at)
        changed_at = state.changed_at if state is not None else None
        if changed_at != self._seen_change:
            self._seen_change = changed_at
            await self._wake_watchers()
