"""A graceful stop: on SIGTERM the JID refuses new work, answers open waits, then exits.

The order matters. The signal itself (not uvicorn's later shutdown phase)
marks the app as stopping: from then on every new request is answered 503
with ``Retry-After`` (clients treat that as an outage and retry, by then
against the restarted daemon), and every open ``/wait`` is answered at once
with the jobs' current state. uvicorn then closes its sockets and waits for
the requests still in flight (submissions, cancels, log reads) before the
app's lifespan ends, which lets unfinished submissions complete before the
backend and store close. A request uvicorn still has to cancel at its
graceful-shutdown timeout is answered 503, never 500.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jid_service.answers import failure, retry_after_header

log = logging.getLogger(__name__)

RESTART_RETRY_AFTER = 2.0
"""``Retry-After`` of a stopping JID: about the time a restart takes."""


class StopState:
    """Whether the JID is stopping, and who to tell when it starts to.

    :meth:`begin` may be called from a signal handler: the callbacks run on the
    event loop, scheduled thread-safely.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._callbacks: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self, callback: Callable[[], None]) -> None:
        """A new run of the app: not stopping; run ``callback`` (on this loop) at its stop."""
        self.stopping = False
        self._loop = asyncio.get_running_loop()
        self._callbacks = [callback]

    def begin(self) -> None:
        """Start stopping: refuse new requests from now on, and run the callbacks."""
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping: new requests are refused, open waits answered")
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for callback in self._callbacks:
            loop.call_soon_threadsafe(callback)


def _stopping_answer(detail: str) -> ASGIApp:
    headers = {**retry_after_header(RESTART_RETRY_AFTER), "Connection": "close"}
    return failure(503, detail, headers)


class StopMiddleware:
    """While stopping: 503 + ``Retry-After`` for every new request; a cancelled one too."""

    def __init__(self, app: ASGIApp, stop: StopState) -> None:
        self.app = app
        self.stop = stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.stop.stopping:
            await _stopping_answer("the JID is restarting; retry")(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # Only uvicorn's graceful-shutdown timeout cancels a request. Left to
            # propagate, uvicorn would answer 500 (which clients take as fatal)
            # and log a traceback; the process is ending anyway, so the request
            # ends here with an answer clients retry.
            if not started:
                await _stopping_answer("the JID stopped before answering; retry")(
                    scope, receive, send)


class GracefulServer(uvicorn.Server):
    """uvicorn's server that tells the app at the signal itself, and exits 0 after it.

    uvicorn re-raises the signal after a graceful stop, so the process would
    die of SIGTERM; a daemon that stopped cleanly exits 0 instead (what
    systemd and Kubernetes expect of a clean stop).
    """

    def __init__(self, config: uvicorn.Config, stop: StopState) -> None:
        super().__init__(config)
        self.stop = stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM: begin the app's stop and uvicorn's; a second SIGINT forces it."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True
        self.stop.begin()
