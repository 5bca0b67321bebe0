"""This JID process's place among the replicas that share its store.

On SQLite there is one process by construction: :class:`SoloReplica` always
polls and says nothing to anyone (today's behaviour, at no cost). On
PostgreSQL, :class:`SharedReplica` takes part: it beats its heartbeat, polls
only while it holds the poller lock (asking for it again at every tick while
it does not), reports each tick for the standby replicas' freshness, owns its
submission claims, and tells the others of changes through the change feed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from jid_service.change_feed import ChangeFeed
from jid_service.leadership import PollerLock, is_postgres
from jid_service.replica_registry import PollerState, ReplicaRegistry
from jid_service.settings import JIDSettings
from jid_service.store import JobStore

log = logging.getLogger(__name__)

STALE_AFTER = 30.0
"""A standby answers 503 once the polling replica's last good tick is older than this
(or than three poll intervals, if longer)."""


def replica_name(settings: JIDSettings) -> str:
    """The setting ``replica_name``, else ``hostname:pid``."""
    return settings.replica_name or f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Staleness:
    """Why a standby's view of the jobs may be stale, and when to ask again."""

    message: str
    retry_after: float


class SoloReplica:
    """The only process on its store: always the poller."""

    solo = True
    leader = True

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self, on_message: Callable[[str], Awaitable[None]]) -> None:
        """Nothing to join."""

    async def lead(self) -> bool:
        """Always the poller."""
        return True

    async def report_tick(self, ok: bool, error: str | None, retry_after: float | None,
                          changed: bool) -> None:
        """Nobody reads the report."""

    async def standby_view(self) -> PollerState | None:
        """Never a standby."""
        return None

    async def own_claim(self, job_id: str) -> None:
        """Every claim is this process's."""

    def tell(self, kind: str) -> None:
        """Nobody listens."""

    async def close(self) -> None:
        """Nothing to leave."""


class SharedReplica:
    """One of several replicas on a PostgreSQL store."""

    solo = False

    def __init__(self, store: JobStore, name: str, poll_interval: float) -> None:
        self.name = name
        self.instance = f"{name}/{uuid.uuid4().hex[:8]}"
        self.poll_interval = poll_interval
        self._engine = store.engine
        self._lock = PollerLock(store.engine)
        self._registry: ReplicaRegistry | None = None
        self._feed: ChangeFeed | None = None
        self._telling: set[asyncio.Task[None]] = set()

    @property
    def leader(self) -> bool:
        """True while this replica holds the poller lock."""
        return self._lock.held

    @property
    def registry(self) -> ReplicaRegistry:
        """The shared tables (after :meth:`start`)."""
        assert self._registry is not None, "SharedReplica.start() first"
        return self._registry

    async def start(self, on_message: Callable[[str], Awaitable[None]]) -> None:
        """Create the shared tables, beat once, listen to the other replicas."""
        self._registry = await asyncio.to_thread(ReplicaRegistry, self._engine, self.instance,
                                                 self.name)
        await asyncio.to_thread(self._registry.beat)
        self._feed = await asyncio.to_thread(ChangeFeed, self._engine, self.instance,
                                             on_message)
        await self._feed.start()
        log.info("replica %s joined the store (poller lock asked at every tick)",
                 self.instance)

    async def lead(self) -> bool:
        """One tick's part: beat, and take (or check) the poller lock."""
        was = self._lock.held
        try:
            await asyncio.to_thread(self.registry.beat)
        except Exception as err:
            log.warning("replica heartbeat failed: %s", type(err).__name__)
        held = await self._lock.hold()
        if held != was:
            log.info("replica %s is now the %s", self.instance,
                     "poller" if held else "standby")
        return held

    async def report_tick(self, ok: bool, error: str | None, retry_after: float | None,
                          changed: bool) -> None:
        """Tell the standbys how the tick went (they answer as fresh as this)."""
        try:
            await asyncio.to_thread(self.registry.record_tick, ok, error, retry_after, changed)
        except Exception as err:
            log.warning("cannot record the poll tick: %s", type(err).__name__)

    async def standby_view(self) -> PollerState | None:
        """The polling replica's last report."""
        return await asyncio.to_thread(self.registry.poller_state)

    async def own_claim(self, job_id: str) -> None:
        """Record this replica as the one submitting ``job_id``."""
        await asyncio.to_thread(self.registry.own_claim, job_id)

    def tell(self, kind: str) -> None:
        """Notify the other replicas, without waiting."""
        if self._feed is None:
            return
        task = asyncio.get_running_loop().create_task(self._feed.publish(kind))
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def close(self) -> None:
        """Leave: stop listening, release the lock, remove the heartbeat row."""
        if self._telling:
            await asyncio.wait(set(self._telling), timeout=2.0)
        if self._feed is not None:
            await self._feed.stop()
        await self._lock.close()
        if self._registry is not None:
            try:
                await asyncio.to_thread(self._registry.leave)
            except Exception as err:
                log.warning("cannot remove the replica's heartbeat row: %s",
                            type(err).__name__)


Replica = SoloReplica | SharedReplica


def make_replica(settings: JIDSettings, store: JobStore) -> Replica:
    """A shared replica on PostgreSQL, the solo one on SQLite."""
    name = replica_name(settings)
    if is_postgres(store.engine):
        return SharedReplica(store, name, settings.poll_interval)
    return SoloReplica(name)


def staleness(state: PollerState | None, poll_interval: float,
              now: float | None = None) -> Staleness | None:
    """Why a standby reading ``state`` may not answer status reads; None when fresh."""
    if state is None:
        return Staleness("no replica has polled the backend yet", 2.0)
    if state.backend_error is not None:
        return Staleness(f"backend unavailable: {state.backend_error}",
                         state.retry_after or 5.0)
    age = (now if now is not None else time.time()) - (state.tick_ok_at or 0.0)
    if age > max(STALE_AFTER, 3 * poll_interval):
        return Staleness(f"the polling replica ({state.holder_name}) last reached the "
                         f"backend {age:.0f} s ago", 5.0)
    return None
