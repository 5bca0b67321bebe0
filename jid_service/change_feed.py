"""Replicas tell each other of changes with PostgreSQL ``LISTEN``/``NOTIFY``.

Every replica listens on a connection of its own; a replica that stored
something others may be waiting for (the poller after a tick that changed a
job, any replica after completing a submission or cancelling) notifies, and
every other replica wakes its local ``/wait`` watchers. The channel name is
derived from the store's schema, so stores sharing a server do not hear each
other. A notification is a hint, never the data: readers read the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.engine import Engine

from jid_service.leadership import connect_kwargs

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
CHANGED = "changed"
"""A job's state changed in the store."""
NUDGE = "nudge"
"""The poller should tick soon (a submission or a cancel happened elsewhere)."""
RESYNC = "resync"
"""Given to the handler after the listening connection was re-made: messages may be lost."""

Handler = Callable[[str], Awaitable[None]]


def channel_name(engine: Engine) -> str:
    """The channel of the store at ``engine`` (one per database and schema)."""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return "jid_" + hashlib.sha256(str(schema).encode()).hexdigest()[:24]


class ChangeFeed:
    """Listen for other replicas' notifications and send this replica's."""

    def __init__(self, engine: Engine, instance: str, handler: Handler) -> None:
        self.engine = engine
        self.instance = instance
        self.handler = handler
        self.channel = channel_name(engine)
        self._kwargs = connect_kwargs(engine)
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self, timeout: float = 10.0) -> None:
        """Start listening; returns once the first ``LISTEN`` is in place (or at ``timeout``)."""
        self._task = asyncio.create_task(self._listen(), name="jid-change-feed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._listening.wait()

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def publish(self, kind: str) -> None:
        """Tell the other replicas (best effort: a lost hint costs at most a poll tick)."""
        try:
            await asyncio.to_thread(self._send, f"{kind} {self.instance}")
        except Exception as err:  # the store's own errors surface on its next use
            log.warning("cannot notify the other replicas: %s", type(err).__name__)

    def _send(self, payload: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                         {"channel": self.channel, "payload": payload})

    async def _listen(self) -> None:
        import psycopg  # the postgres extra: only a PostgreSQL store gets here
        from psycopg import sql

        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        autocommit=True, **self._kwargs) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._listening.set()
                    if not first:
                        await self.handler(RESYNC)
                    first = False
                    async for note in conn.notifies():
                        await self._deliver(note.payload)
            except psycopg.Error as err:
                log.warning("change feed: %s; listening again in %g s", err, RECONNECT_SECONDS)
            first = False
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _deliver(self, payload: str) -> None:
        kind, _, sender = payload.partition(" ")
        if sender == self.instance:
            return
        try:
            await self.handler(kind)
        except Exception:
            log.exception("change feed handler failed")
