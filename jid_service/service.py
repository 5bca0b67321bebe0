"""The JID's core, assembled: one backend, one store, and the parts that share them.

:class:`~jid_service.poller.Poller` alone asks the backend for states;
:class:`~jid_service.submissions.Submissions` submits and cancels;
:class:`~jid_service.readers.Readers` answers reads from the store (and logs
from the backend); :class:`~jid_service.health.HealthCheck` serves ``/healthz``.
"""

from __future__ import annotations

import asyncio

from jid_service.backends.base import Backend
from jid_service.context import JobContext
from jid_service.health import HealthCheck
from jid_service.metrics import Metrics
from jid_service.poller import Poller
from jid_service.readers import Readers
from jid_service.replica import make_replica
from jid_service.settings import JIDSettings
from jid_service.store import JobStore
from jid_service.submissions import Submissions

SUBMISSION_DRAIN_SECONDS = 30.0
"""How long a stopping JID lets submissions in flight finish."""


class JobService:
    """Submit, follow, read and cancel jobs through one backend and one store."""

    def __init__(self, settings: JIDSettings, backend: Backend, store: JobStore,
                 metrics: Metrics) -> None:
        self.replica = make_replica(settings, store)
        context = JobContext(settings, backend, store, metrics, self.replica)
        self.backend = backend
        self.store = store
        self.metrics = metrics
        self.poller = Poller(context)
        self.submissions = Submissions(context, self.poller)
        if not self.replica.solo:
            # claims of dead replicas are settled by whichever replica polls
            self.poller.on_lead = self.submissions.settle_orphan_claims_soon
        self.readers = Readers(context, self.poller)
        self.health = HealthCheck(context)

    @property
    def ticks(self) -> int:
        """Poll ticks that succeeded since start."""
        return self.poller.ticks

    async def start(self) -> None:
        """Join the other replicas (if any), recover from a previous run, start the poller.

        Alone on its store, the JID settles every claim left at once; beside
        other replicas it leaves that to the polling one, for dead replicas'
        claims only.
        """
        await self.replica.start(self.poller.hear)
        if self.replica.solo:
            await self.submissions.recover_interrupted_claims()
        self.poller.start()

    def begin_stop(self) -> None:
        """The JID is stopping: answer every open wait now (new requests are refused)."""
        self.metrics.stopping.set(1)
        self.poller.release_watchers()

    async def stop(self, drain_timeout: float = SUBMISSION_DRAIN_SECONDS) -> None:
        """Finish the submissions in flight, stop the poller, release the backend and store."""
        await self.submissions.drain(drain_timeout)
        await self.poller.stop()
        await self.replica.close()
        await self.backend.aclose()
        await asyncio.to_thread(self.store.close)

    async def refresh_job_metrics(self) -> None:
        """Publish per-status job counts."""
        self.metrics.set_job_counts(await asyncio.to_thread(self.store.count_by_status))
