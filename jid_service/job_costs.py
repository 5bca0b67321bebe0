"""What finished jobs cost: asked of the backend after they end, stored once, counted in /metrics.

The poller notes every job it stores as finished (:meth:`JobCosts.note`) and
calls :meth:`JobCosts.collect` once per tick: at most once every
``ASK_INTERVAL`` seconds, one ``backend.costs()`` call asks for up to
``BATCH`` noted jobs at once (for Slurm: one ``sacct``). A reading the backend
calls settled is stored at once; an unsettled one (Slurm fills MaxRSS and
TotalCPU a moment after a job ends) is asked for again and stored as it is
after ``SETTLE_SECONDS``. A job the backend says nothing of is given up after
``GIVE_UP_SECONDS``. Nothing here fails a poll tick: an unreachable backend
only pauses the asking for ``PAUSE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from jid_service.backend_call import call_backend
from jid_service.backends.base import BackendUnavailable
from jid_service.backends.job_cost import JobCost
from jid_service.context import JobContext, ServicePart
from jid_service.store import StateUpdate
from lute.job_status import FINISHED_STATUSES

log = logging.getLogger(__name__)

ASK_INTERVAL = 1.0
"""Seconds between two asks of the backend (whatever the poll interval)."""
BATCH = 500
"""Jobs asked for in one backend call; the rest wait for the next ask."""
SETTLE_SECONDS = 10.0
"""How long an unsettled reading is asked for again before it is stored as it is."""
GIVE_UP_SECONDS = 120.0
"""How long a job the backend knows nothing of is asked for."""
PAUSE_SECONDS = 15.0
"""No ask for this long after the backend could not answer."""
CALL_TIMEOUT = 30.0
"""Bound of one ``costs`` call (the Slurm backend's own query timeout is tighter)."""
MAX_PENDING = 20_000
"""Bound of the jobs waiting for their cost (more are not followed)."""


@dataclass
class _Pending:
    since: float
    last: JobCost | None = None


class JobCosts(ServicePart):
    """The finished jobs whose cost is still to be read, and the reading of it."""

    def __init__(self, context: JobContext) -> None:
        super().__init__(context)
        self._pending: dict[str, _Pending] = {}
        self._next_ask = 0.0

    @property
    def pending(self) -> int:
        """How many finished jobs wait for their cost."""
        return len(self._pending)

    def note(self, updates: Iterable[StateUpdate]) -> None:
        """Follow the jobs these updates finish."""
        now = time.monotonic()
        for update in updates:
            if update.status in FINISHED_STATUSES and update.id not in self._pending \
                    and len(self._pending) < MAX_PENDING:
                self._pending[update.id] = _Pending(since=now)

    async def collect(self) -> int:
        """Ask the backend for the noted jobs' costs and store those that are known.

        Returns how many costs were stored. Never raises (but for cancellation).
        """
        now = time.monotonic()
        if not self._pending or now < self._next_ask:
            return 0
        self._next_ask = now + ASK_INTERVAL
        try:
            return await self._collect(now)
        except BackendUnavailable as err:
            log.info("job costs wait for the backend: %s", err)
            self._next_ask = now + PAUSE_SECONDS
        except Exception:
            log.exception("reading job costs failed")
        return 0

    async def _collect(self, now: float) -> int:
        batch = list(self._pending)[:BATCH]
        records = await asyncio.to_thread(self.store.get_many, batch)
        wanted: dict[str, str] = {}  # tool id -> job id
        for job_id in batch:
            record = records.get(job_id)
            if record is None or record.cost is not None or not record.tool_id \
                    or not record.finished:
                del self._pending[job_id]
            else:
                wanted[record.tool_id] = job_id
        if not wanted:
            return 0
        readings = await call_backend(self.metrics, "costs",
                                      self.backend.costs(list(wanted)), timeout=CALL_TIMEOUT)
        ready: dict[str, JobCost] = {}
        for tool_id, job_id in wanted.items():
            pending = self._pending[job_id]
            reading = readings.get(tool_id)
            age = now - pending.since
            if reading is not None and (reading.settled or age >= SETTLE_SECONDS):
                ready[job_id] = reading.cost
            elif reading is not None:
                pending.last = reading.cost
            elif age >= GIVE_UP_SECONDS:
                if pending.last is not None:
                    ready[job_id] = pending.last
                else:
                    del self._pending[job_id]
                    log.info("job %s (%s): its cost is unknown to the backend", job_id, tool_id)
        if not ready:
            return 0
        stored = await asyncio.to_thread(self.store.record_costs, ready)
        for job_id, cost in ready.items():
            del self._pending[job_id]
            definition = records[job_id].document.get("def")
            task = definition.get("name") if isinstance(definition, dict) else None
            self.metrics.observe_cost(str(task or "unknown"), cost)
        return stored
