"""HTTP client of the job interface daemon (JID), sync and async.

Every call has a timeout. Connection errors, 429 and 503 are retried with
exponential backoff (honouring ``Retry-After``) until a retry budget runs out;
every other failure is decoded from the JID's ``{"success", "value", "error"}``
envelope into a typed :class:`JIDError`. Retrying is safe for every endpoint:
``start_job`` is idempotent on the control document's ``_id``, and the others
only read or cancel.

The token is sent as ``Authorization: Bearer <token>`` and never appears in a
log line, an exception message or ``repr``. This module does not import
Airflow, so it can be used (and tested) without it.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_PATH = "/jid/ws"
MAX_WAIT_SECONDS = 60.0
"""The JID's ``POST /wait`` long-poll accepts at most this timeout."""

ControlDocument = dict[str, Any]


class JIDError(Exception):
    """The JID answered with an error or could not be reached."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class JIDAuthError(JIDError):
    """The token was refused (401) or does not allow this experiment (403)."""


class JIDValidationError(JIDError):
    """The JID rejected the request as invalid (400/422); nothing was submitted."""


class JIDNotFoundError(JIDError):
    """The job (or endpoint) is unknown to the JID (404)."""


class JIDUnavailableError(JIDError):
    """The JID or its scheduler stayed unreachable or overloaded after retries."""

    def __init__(
        self, message: str, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code)
        self.retry_after = retry_after


class JIDProtocolError(JIDError):
    """The JID answered something that is not its envelope."""


class _RetryableError(Exception):
    """Internal: an attempt failed in a way worth retrying."""

    def __init__(self, error: JIDUnavailableError) -> None:
        super().__init__(str(error))
        self.error = error


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def bearer(token: str | None) -> str | None:
    """The Authorization header value for a token (ARP tokens already carry ``Bearer``)."""
    if not token:
        return None
    token = token.strip()
    if token.lower().startswith("bearer "):
        return token
    return f"Bearer {token}"


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry connection errors, 429 and 503."""

    attempts: int = 8
    budget_seconds: float = 120.0
    initial_backoff: float = 0.5
    max_backoff: float = 30.0

    def wait_seconds(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or the server's Retry-After if it gave one."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableError) and exc.error.retry_after is not None:
            return min(exc.error.retry_after, self.max_backoff)
        base = min(self.initial_backoff * 2 ** (state.attempt_number - 1), self.max_backoff)
        # Jitter keeps many operators that lost the JID at once from returning in step.
        return base * (0.5 + random.random() / 2)  # noqa: S311 - not cryptographic

    def stop(self) -> Any:
        """The tenacity stop condition of this policy."""
        return stop_after_attempt(self.attempts) | stop_after_delay(self.budget_seconds)


NO_RETRY = RetryPolicy(attempts=1, budget_seconds=0.0)
"""A policy for callers that do their own retrying (the trigger)."""


def decode_response(response: httpx.Response) -> Any:
    """The ``value`` of a JID envelope, or the matching :class:`JIDError`."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    message = ""
    if isinstance(body, dict):
        message = str(body.get("error") or body.get("detail") or "")
    if not message:
        message = response.text[:500] if response.text else response.reason_phrase
    where = f"{response.request.method} {response.request.url.path}"
    if status in (401, 403):
        raise JIDAuthError(f"JID refused the token ({status}) for {where}: {message}", status)
    if status in (400, 422):
        raise JIDValidationError(f"JID rejected {where} ({status}): {message}", status)
    if status == 404:
        raise JIDNotFoundError(f"JID: not found ({where}): {message}", status)
    if status in (429, 503):
        raise JIDUnavailableError(
            f"JID unavailable ({status}) for {where}: {message}",
            status,
            parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 400:
        raise JIDError(f"JID error {status} for {where}: {message}", status)
    if not isinstance(body, dict) or "success" not in body:
        raise JIDProtocolError(f"JID answered {where} without its envelope: {message}", status)
    if body.get("success") is not True:
        raise JIDError(f"JID reported failure for {where}: {message}", status)
    return body.get("value")


def _transport_failure(exc: httpx.TransportError, method: str, path: str) -> JIDUnavailableError:
    return JIDUnavailableError(f"cannot reach the JID for {method} {path}: {type(exc).__name__}")


@dataclass
class _ClientBase:
    """What the sync and async clients share: address, token, timeouts, retry policy."""

    base_url: str
    token: str | None = field(default=None, repr=False)
    base_path: str = DEFAULT_BASE_PATH
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.base_path = "/" + self.base_path.strip("/") if self.base_path.strip("/") else ""

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        auth = bearer(self.token)
        if auth:
            headers["Authorization"] = auth
        return headers

    def _path(self, endpoint: str) -> str:
        return f"{self.base_path}/{endpoint.lstrip('/')}"

    @staticmethod
    def _experiment_endpoint(doc: Mapping[str, Any], action: str) -> str:
        experiment = doc.get("experiment")
        if not experiment:
            raise JIDValidationError(f"control document has no experiment; cannot {action}")
        return f"{quote(str(experiment), safe='')}/{action}"


def _median_seconds(value: Any) -> float | None:
    median = value.get("median_seconds") if isinstance(value, dict) else None
    if median is None:
        return None
    if not isinstance(median, int | float):
        raise JIDProtocolError(f"typical_duration: median_seconds is not a number: {median!r}")
    return float(median)


class JIDClient(_ClientBase):
    """Blocking JID client (the non-deferrable operator, ``on_kill``, the launcher)."""

    def __init__(self, *args: Any, transport: httpx.BaseTransport | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, transport=transport
        )

    def __enter__(self) -> JIDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _once(self, method: str, path: str, json: Any, timeout: float | None) -> Any:
        try:
            response = self._http.request(
                method, path, json=json, headers=self._headers(),
                timeout=timeout if timeout is not None else self.timeout,
            )
        except httpx.TransportError as exc:
            raise _RetryableError(_transport_failure(exc, method, path)) from exc
        try:
            return decode_response(response)
        except JIDUnavailableError as exc:
            raise _RetryableError(exc) from exc

    def request(
        self, method: str, endpoint: str, json: Any = None, timeout: float | None = None
    ) -> Any:
        """Call an endpoint under the base path and return the envelope's value."""
        path = self._path(endpoint)
        retrying = Retrying(
            retry=retry_if_exception_type(_RetryableError),
            wait=self.retry.wait_seconds,
            stop=self.retry.stop(),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(method, path, json, timeout)
        except _RetryableError as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def start_job(self, doc: ControlDocument) -> ControlDocument:
        """Submit a job; returns the document with ``tool_id`` and ``status``."""
        return self.request("POST", self._experiment_endpoint(doc, "start_job"), doc)

    def job_statuses(self, docs: Sequence[ControlDocument]) -> list[ControlDocument]:
        """Fresh statuses of many jobs."""
        return self.request("POST", "job_statuses", list(docs))

    def job_log_file(self, doc: ControlDocument) -> str:
        """The job's whole log text."""
        return self.request("POST", self._experiment_endpoint(doc, "job_log_file"), doc)

    def job_log(self, doc: ControlDocument, offset: int = 0, limit: int = 1 << 20) -> dict:
        """A chunk of the log: ``{"text", "offset", "next_offset", "complete"}``."""
        body = {"job": doc, "offset": offset, "limit": limit}
        return self.request("POST", self._experiment_endpoint(doc, "job_log"), body)

    def kill_job(self, doc: ControlDocument) -> ControlDocument:
        """Cancel a job; returns the document (status ``EXITED`` once cancelled)."""
        return self.request("POST", self._experiment_endpoint(doc, "kill_job"), doc)

    def render_job(self, doc: ControlDocument) -> dict:
        """Dry run: the exact submission ``{"backend", "argv", "script"}``; nothing submitted."""
        return self.request("POST", self._experiment_endpoint(doc, "render_job"), doc)

    def typical_duration(self, doc: ControlDocument) -> float | None:
        """Median seconds recent DONE jobs of ``doc``'s managed task took; None without any.

        A hint, so one attempt and no retries: any trouble raises at once.
        """
        try:
            endpoint = self._experiment_endpoint(doc, "typical_duration")
            value = self._once("POST", self._path(endpoint), doc, None)
        except _RetryableError as exc:
            raise exc.error from None
        return _median_seconds(value)

    def wait(self, docs: Sequence[ControlDocument], timeout: float) -> list[ControlDocument]:
        """Long-poll until any status differs from the one sent, or ``timeout`` (<= 60 s)."""
        timeout = max(0.0, min(timeout, MAX_WAIT_SECONDS))
        body = {"jobs": list(docs), "timeout": timeout}
        return self.request("POST", "wait", body, timeout=timeout + self.timeout)

    def healthz(self) -> Any:
        """``GET /healthz`` (outside the base path)."""
        try:
            response = self._http.get("/healthz", timeout=self.timeout)
        except httpx.TransportError as exc:
            raise _transport_failure(exc, "GET", "/healthz") from exc
        if response.status_code == 200:
            return response.json()
        return decode_response(response)


class AsyncJIDClient(_ClientBase):
    """Asyncio JID client (the trigger)."""

    def __init__(self, *args: Any, transport: httpx.AsyncBaseTransport | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncJIDClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _once(self, method: str, path: str, json: Any, timeout: float | None) -> Any:
        try:
            response = await self._http.request(
                method, path, json=json, headers=self._headers(),
                timeout=timeout if timeout is not None else self.timeout,
            )
        except httpx.TransportError as exc:
            raise _RetryableError(_transport_failure(exc, method, path)) from exc
        try:
            return decode_response(response)
        except JIDUnavailableError as exc:
            raise _RetryableError(exc) from exc

    async def request(
        self, method: str, endpoint: str, json: Any = None, timeout: float | None = None
    ) -> Any:
        """Call an endpoint under the base path and return the envelope's value."""
        path = self._path(endpoint)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RetryableError),
            wait=self.retry.wait_seconds,
            stop=self.retry.stop(),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, path, json, timeout)
        except _RetryableError as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def start_job(self, doc: ControlDocument) -> ControlDocument:
        """Submit a job; returns the document with ``tool_id`` and ``status``."""
        return await self.request("POST", self._experiment_endpoint(doc, "start_job"), doc)

    async def job_statuses(self, docs: Sequence[ControlDocument]) -> list[ControlDocument]:
        """Fresh statuses of many jobs."""
        return await self.request("POST", "job_statuses", list(docs))

    async def job_log_file(self, doc: ControlDocument) -> str:
        """The job's whole log text."""
        return await self.request("POST", self._experiment_endpoint(doc, "job_log_file"), doc)

    async def kill_job(self, doc: ControlDocument) -> ControlDocument:
        """Cancel a job; returns the document (status ``EXITED`` once cancelled)."""
        return await self.request("POST", self._experiment_endpoint(doc, "kill_job"), doc)

    async def render_job(self, doc: ControlDocument) -> dict:
        """Dry run: the exact submission ``{"backend", "argv", "script"}``; nothing submitted."""
        return await self.request("POST", self._experiment_endpoint(doc, "render_job"), doc)

    async def typical_duration(self, doc: ControlDocument) -> float | None:
        """Median seconds recent DONE jobs of ``doc``'s managed task took; None without any.

        A hint, so one attempt and no retries: any trouble raises at once.
        """
        try:
            endpoint = self._experiment_endpoint(doc, "typical_duration")
            value = await self._once("POST", self._path(endpoint), doc, None)
        except _RetryableError as exc:
            raise exc.error from None
        return _median_seconds(value)

    async def wait(
        self, docs: Sequence[ControlDocument], timeout: float
    ) -> list[ControlDocument]:
        """Long-poll until any status differs from the one sent, or ``timeout`` (<= 60 s)."""
        timeout = max(0.0, min(timeout, MAX_WAIT_SECONDS))
        body = {"jobs": list(docs), "timeout": timeout}
        return await self.request("POST", "wait", body, timeout=timeout + self.timeout)
