"""HTTP clients of the job interface daemon (JID): one table of endpoints, two transports.

Every endpoint is written once, in :class:`JIDEndpoints`, as the request it
makes (a :class:`Call`); :class:`JIDClient` performs calls blocking and
:class:`AsyncJIDClient` on asyncio, so both have every endpoint and cannot
drift apart.

Every call has a timeout. Connection errors, 429, 502, 503 and 504 are retried under the
client's :class:`~lute.airflow.retry_policy.RetryPolicy` (exponential backoff
honouring ``Retry-After``); every other failure is decoded from the JID's
envelope into a typed :class:`~lute.airflow.jid_errors.JIDError`. Retrying is
safe for every endpoint: ``start_job`` is idempotent on the control
document's ``_id``, and the others only read or cancel.

The token is sent as ``Authorization: Bearer <token>`` and never appears in a
log line, an exception message or ``repr``. This module does not import
Airflow, so it can be used (and tested) without it.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, Retrying

from lute.airflow.jid_errors import (
    JIDAuthError,
    JIDError,
    JIDNotFoundError,
    JIDProtocolError,
    JIDTLSError,
    JIDUnavailableError,
    JIDValidationError,
    decode_response,
    parse_retry_after,
    transport_failure,
)
from lute.airflow.retry_policy import NO_RETRY, RetryPolicy
from lute.airflow.tls import httpx_verify

__all__ = [
    "DEFAULT_BASE_PATH",
    "MAX_WAIT_SECONDS",
    "NO_RETRY",
    "AsyncJIDClient",
    "Call",
    "ControlDocument",
    "JIDAuthError",
    "JIDClient",
    "JIDEndpoints",
    "JIDError",
    "JIDNotFoundError",
    "JIDProtocolError",
    "JIDTLSError",
    "JIDUnavailableError",
    "JIDValidationError",
    "RetryPolicy",
    "bearer",
    "decode_response",
    "parse_retry_after",
]

DEFAULT_BASE_PATH = "/jid/ws"
MAX_WAIT_SECONDS = 60.0
"""The JID's ``POST /wait`` long-poll accepts at most this timeout."""

ControlDocument = dict[str, Any]

P = ParamSpec("P")
T = TypeVar("T")


def bearer(token: str | None) -> str | None:
    """The Authorization header value for a token (ARP tokens already carry ``Bearer``)."""
    if not token:
        return None
    token = token.strip()
    if token.lower().startswith("bearer "):
        return token
    return f"Bearer {token}"


def _plain(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request to the JID and how to read its answer."""

    method: str
    path: str
    """Under the client's base path, unless it starts with ``/``."""
    body: Any = None
    timeout: float | None = None
    """Seconds for this request; None: the client's timeout."""
    retried: bool = True
    """False: one attempt whatever the client's policy (a hint must not delay its caller)."""
    enveloped: bool = True
    """False: a 200 answer is plain JSON, not the JID's envelope (``/healthz``)."""
    decode: Callable[[Any], T] = _plain


class _Endpoint(Generic[P, T]):
    """An endpoint of the table: bound to a client, it performs its :class:`Call`."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self.build = build
        functools.update_wrapper(self, build)

    @overload
    def __get__(self, client: None, owner: type) -> _Endpoint[P, T]: ...
    @overload
    def __get__(self, client: JIDClient, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncJIDClient, owner: type) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self
        build = self.build

        @functools.wraps(build)
        def perform(*args: P.args, **kwargs: P.kwargs) -> Any:
            return client._perform(functools.partial(build, client, *args, **kwargs))

        return perform


def _median_seconds(value: Any) -> float | None:
    median = value.get("median_seconds") if isinstance(value, dict) else None
    if median is None:
        return None
    if not isinstance(median, int | float):
        raise JIDProtocolError(f"typical_duration: median_seconds is not a number: {median!r}")
    return float(median)


@dataclass
class JIDEndpoints:
    """Address, token, timeouts and retry policy, and every endpoint of the JID, once.

    ``ca_bundle``: path of the PEM bundle of the CAs to trust for an https JID
    (:mod:`lute.airflow.tls`); None trusts the system's. Building a client
    reads it: on an event loop, build clients in a thread.
    """

    base_url: str
    token: str | None = field(default=None, repr=False)
    base_path: str = DEFAULT_BASE_PATH
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ca_bundle: str | None = None
    _retry_log: logging.Logger | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.base_path = "/" + self.base_path.strip("/") if self.base_path.strip("/") else ""

    def with_retry(self, policy: RetryPolicy, log: logging.Logger | None = None) -> Self:
        """This client under another retry policy (sharing its connections); ``log`` logs retries.

        Close the original, not the copy.
        """
        other = copy.copy(self)
        other.retry, other._retry_log = policy, log
        return other

    # -- what the transports share ------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        auth = bearer(self.token)
        if auth:
            headers["Authorization"] = auth
        return headers

    def _url_path(self, call: Call[Any]) -> str:
        return call.path if call.path.startswith("/") else f"{self.base_path}/{call.path}"

    def _request_args(self, call: Call[Any]) -> dict[str, Any]:
        return {
            "method": call.method, "url": self._url_path(call), "json": call.body,
            "headers": self._headers(),
            "timeout": call.timeout if call.timeout is not None else self.timeout,
        }

    def _tenacity_args(self, call: Call[Any]) -> dict[str, Any]:
        policy = self.retry if call.retried else NO_RETRY
        return policy.tenacity_args(self._retry_log)

    def _failure(self, exc: httpx.TransportError, call: Call[Any]) -> JIDError:
        return transport_failure(exc, call.method, self._url_path(call))

    @staticmethod
    def _answer(call: Call[T], response: httpx.Response) -> T:
        if not call.enveloped and response.status_code == 200:
            return call.decode(response.json())
        return call.decode(decode_response(response))

    @staticmethod
    def _experiment_path(doc: Mapping[str, Any], action: str) -> str:
        experiment = doc.get("experiment")
        if not experiment:
            raise JIDValidationError(f"control document has no experiment; cannot {action}")
        return f"{quote(str(experiment), safe='')}/{action}"

    # -- the endpoints ------------------------------------------------------------

    @_Endpoint
    def request(
        self, method: str, endpoint: str, json: Any = None, timeout: float | None = None
    ) -> Call[Any]:
        """Call an endpoint under the base path and return the envelope's value."""
        return Call(method, endpoint.lstrip("/"), json, timeout)

    @_Endpoint
    def start_job(self, doc: ControlDocument) -> Call[ControlDocument]:
        """Submit a job; returns the document with ``tool_id`` and ``status``."""
        return Call("POST", self._experiment_path(doc, "start_job"), doc)

    @_Endpoint
    def job_statuses(self, docs: Sequence[ControlDocument]) -> Call[list[ControlDocument]]:
        """Fresh statuses of many jobs."""
        return Call("POST", "job_statuses", list(docs))

    @_Endpoint
    def job_log_file(self, doc: ControlDocument) -> Call[str]:
        """The job's whole log text."""
        return Call("POST", self._experiment_path(doc, "job_log_file"), doc)

    @_Endpoint
    def job_log(
        self, doc: ControlDocument, offset: int = 0, limit: int = 1 << 20
    ) -> Call[dict[str, Any]]:
        """A chunk of the log: ``{"text", "offset", "next_offset", "complete"}``."""
        body = {"job": doc, "offset": offset, "limit": limit}
        return Call("POST", self._experiment_path(doc, "job_log"), body)

    @_Endpoint
    def kill_job(self, doc: ControlDocument) -> Call[ControlDocument]:
        """Cancel a job; returns the document (status ``EXITED`` once cancelled)."""
        return Call("POST", self._experiment_path(doc, "kill_job"), doc)

    @_Endpoint
    def render_job(self, doc: ControlDocument) -> Call[dict[str, Any]]:
        """Dry run: the exact submission ``{"backend", "argv", "script"}``; nothing submitted."""
        return Call("POST", self._experiment_path(doc, "render_job"), doc)

    @_Endpoint
    def typical_duration(self, doc: ControlDocument) -> Call[float | None]:
        """Median seconds recent DONE jobs of ``doc``'s managed task took; None without any.

        A hint, so one attempt and no retries: any trouble raises at once.
        """
        path = self._experiment_path(doc, "typical_duration")
        return Call("POST", path, doc, retried=False, decode=_median_seconds)

    @_Endpoint
    def done_job(self, doc: ControlDocument) -> Call[dict[str, Any]]:
        """An earlier DONE job of ``doc``'s step to reuse: ``{"job": doc or None, "log": str}``."""
        return Call("POST", self._experiment_path(doc, "done_job"), doc)

    @_Endpoint
    def wait(self, docs: Sequence[ControlDocument], timeout: float) -> Call[list[ControlDocument]]:
        """Long-poll until any status differs from the one sent, or ``timeout`` (<= 60 s)."""
        timeout = max(0.0, min(timeout, MAX_WAIT_SECONDS))
        body = {"jobs": list(docs), "timeout": timeout}
        return Call("POST", "wait", body, timeout=timeout + self.timeout)

    @_Endpoint
    def run_token(self, experiment: str, arp_root_job_id: str, ttl: float) -> Call[dict[str, Any]]:
        """A token of the caller for one run: ``token``, ``arp_root_job_id``, ``expires_in``."""
        path = f"{quote(experiment, safe='')}/run_token"
        return Call("POST", path, {"arp_root_job_id": arp_root_job_id, "ttl": ttl})

    @_Endpoint
    def healthz(self) -> Call[Any]:
        """``GET /healthz`` (outside the base path); one attempt."""
        return Call("GET", "/healthz", retried=False, enveloped=False)


class JIDClient(JIDEndpoints):
    """Blocking JID client (the non-deferrable operator, ``on_kill``, the launcher)."""

    def __init__(self, *args: Any, transport: httpx.BaseTransport | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, transport=transport,
            verify=httpx_verify(self.ca_bundle),
        )

    def __enter__(self) -> JIDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _perform(self, build: Callable[[], Call[T]]) -> T:
        call = build()
        return Retrying(**self._tenacity_args(call))(self._once, call)

    def _once(self, call: Call[T]) -> T:
        try:
            response = self._http.request(**self._request_args(call))
        except httpx.TransportError as exc:
            raise self._failure(exc, call) from exc
        return self._answer(call, response)


class AsyncJIDClient(JIDEndpoints):
    """Asyncio JID client (the trigger)."""

    def __init__(self, *args: Any, transport: httpx.AsyncBaseTransport | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=transport,
            verify=httpx_verify(self.ca_bundle),
        )

    async def __aenter__(self) -> AsyncJIDClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _perform(self, build: Callable[[], Call[T]]) -> T:
        call = build()
        return await AsyncRetrying(**self._tenacity_args(call))(self._once, call)

    async def _once(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(**self._request_args(call))
        except httpx.TransportError as exc:
            raise self._failure(exc, call) from exc
        return self._answer(call, response)
