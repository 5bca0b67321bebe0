"""Connection lookups of one event loop, shared while in flight and reused briefly.

In the triggerer every lookup of a connection is a request through its
supervisor, which answers one request at a time: a dozen steps starting at
once each asked for the same ``jid`` connection and waited in line for up to
1.5 s. One lookup now serves every trigger of the process that asks while it
is in flight or within :data:`REUSE_SECONDS` after it, so an edited
connection (a new token) reaches new triggers within that time. A failed
lookup is not reused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

REUSE_SECONDS = 10.0
"""How long one connection lookup serves later asks in the same process."""


class RecentLookups(Generic[T]):
    """Results of ``lookup(name)`` on the running event loop, shared and reused briefly."""

    def __init__(self, seconds: float = REUSE_SECONDS) -> None:
        self.seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._entries: dict[str, tuple[float, asyncio.Future[T]]] = {}

    async def get(self, name: str, lookup: Callable[[], Awaitable[T]]) -> T:
        """The result of ``lookup()`` for ``name``: in flight, recent, or asked now."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # futures belong to one loop (tests run many)
            self._loop, self._entries = loop, {}
        now = loop.time()
        entry = self._entries.get(name)
        if entry is None or (entry[1].done() and (
                now - entry[0] >= self.seconds or entry[1].cancelled()
                or entry[1].exception() is not None)):
            entry = self._entries[name] = (now, asyncio.ensure_future(lookup()))
        # shielded: a trigger cancelled while it waits leaves the lookup to the others
        return await asyncio.shield(entry[1])
