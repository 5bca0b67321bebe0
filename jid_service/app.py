"""The FastAPI application: routes, error handlers, middleware, the service's lifetime."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jid_service import __version__ as _version
from jid_service.answers import REFUSALS, answer, failure
from jid_service.auth import Authenticator
from jid_service.backends import create_backend
from jid_service.backends.base import Backend
from jid_service.identity_provider import IdentityProvider
from jid_service.metrics import Metrics
from jid_service.routes import ops, router
from jid_service.service import JobService
from jid_service.settings import JIDSettings
from jid_service.shutdown import StopMiddleware, StopState
from jid_service.signing_secrets import signing_secrets
from jid_service.store import JobStore

log = logging.getLogger(__name__)


MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (1000 control documents fit easily)."""


class BodyLimitMiddleware:
    """Refuse bodies above ``MAX_BODY_BYTES`` (413) without holding more than that.

    A declared ``Content-Length`` above the limit is refused before anything
    reads the body; a body sent without one (chunked) is counted as it
    arrives, and reading stops with a 413 as soon as the count passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> StarletteHTTPException:
        return StarletteHTTPException(413, f"request body above {self.limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    exc = self._refusal()
                    await failure(exc.status_code, exc.detail)(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI re-raises an HTTPException met while reading the
                    # body, so the app's handler answers it in the envelope.
                    raise self._refusal()
            return message

        await self.app(scope, counting_receive, send)


class RequestMetricsMiddleware:
    """Time every HTTP request, labelled by route template (never by raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )


def _install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the envelope: the table's kinds by the table, the rest here."""

    async def _refused(_request: Request, exc: Exception) -> JSONResponse:
        return answer(exc)

    for exc_type in REFUSALS:
        app.add_exception_handler(exc_type, _refused)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return failure(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return failure(500, f"internal error ({type(exc).__name__})")


def open_store(url: str, attempts: int = 3) -> JobStore:
    """The store at ``url``; replicas starting at once may race to create its tables."""
    for _attempt in range(attempts - 1):
        try:
            return JobStore(url)
        except (IntegrityError, ProgrammingError):
            time.sleep(0.2)  # another replica created them meanwhile: found next time
    return JobStore(url)


def create_app(
    settings: JIDSettings,
    backend: Backend | None = None,
    store: JobStore | None = None,
) -> FastAPI:
    """The JID application for ``settings`` (backend and store built from them unless given)."""
    authenticator = Authenticator(
        signing_secrets(settings),
        IdentityProvider(settings.identity_provider) if settings.identity_provider else None,
    )
    metrics = Metrics()
    stop = StopState()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = JobService(
            settings,
            backend if backend is not None else create_backend(settings),
            store if store is not None else open_store(settings.effective_db_url),
            metrics,
        )
        app.state.service = service
        await service.start()
        stop.arm(service.begin_stop)
        try:
            yield
        finally:
            # a stop without a signal (tests, a server without GracefulServer)
            # still refuses new requests and releases the open waits first
            stop.begin()
            service.begin_stop()
            await service.stop()

    app = FastAPI(
        title="LUTE job interface daemon",
        version=_version,
        description=(
            "ARP-compatible job interface: submit managed tasks to a batch backend, "
            "follow them, read their logs. Every answer is "
            '`{"success": bool, "value": ..., "error": str | null}`.'
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.metrics = metrics
    app.state.stop = stop
    app.include_router(router)
    app.include_router(ops)
    _install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(StopMiddleware, stop=stop)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app


def app_from_environment() -> Any:
    """An app from the environment and settings file (for ``uvicorn --factory``)."""
    from jid_service.settings import load_settings

    return create_app(load_settings())
