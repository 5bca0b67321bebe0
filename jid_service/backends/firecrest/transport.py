"""The ``firecrest`` backend's HTTP side: pyfirecrest's client, tokens and one retry policy.

Failures: 5xx, 408, 424 (SSH), 429, timeouts and connection errors are retried
with exponential backoff (tenacity) within a bounded budget, then raise
:class:`BackendUnavailable`; a 401 refreshes the token once and retries. A
caller may name answers of those statuses that are definite (``definite``:
FirecREST answers every failed Slurm command with a 500, ``sbatch: error:``
included) and may refuse to resend after an answer that leaves the outcome
unknown (``resend_ambiguous=False``: a submission).

pyfirecrest's public methods turn every non-expected status into one
exception type and its ``view`` cannot read from an offset, so requests go
through the client's request helpers (``_get_request`` and friends, which add
the auth and tracing headers) and callers check status codes themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from jid_service.backends.base import BackendUnavailable
from jid_service.backends.firecrest.config import (
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_TOKEN_URL,
    FirecrestConfigError,
)
from jid_service.backends.firecrest.decode import error_text

if TYPE_CHECKING:
    from jid_service.backends.firecrest.config import FirecrestConfig

log = logging.getLogger(__name__)

MIN_TOKEN_VALIDITY = 60
"""Seconds a token must still be valid to be reused (the server rejects < 30 s)."""

TOKEN_TIMEOUT = 10
"""Seconds a token request may take: a hung token server must not hang the JID."""

# Statuses worth retrying: the gateway or the scheduler behind it failed now.
_TRANSIENT_STATUS = frozenset({408, 424, 429, 500, 502, 503, 504})
# Of those, the ones the gateway sends before running any command (rate limit,
# its own scheduler health gate): after them nothing can have been submitted.
# After any other (a 500 from an SSH command timeout, a proxy's 502/504) the
# command may have run.
_NOTHING_RAN_STATUS = frozenset({429, 503})
UNHEALTHY_GATE_RETRY = 30.0
"""Seconds to advise after the gateway's health gate (a 503 without ``Retry-After``):
the gate stays shut until the gateway's next probe of the scheduler."""

Definite = Callable[[httpx.Response], bool]

Send = Callable[[], Awaitable[httpx.Response]]


class TokenSource(Protocol):
    """What the backend needs of an OIDC client: pyfirecrest's ClientCredentialsAuth fits."""

    def get_access_token(self) -> str:
        """A valid access token (may block on a token request)."""
        ...


def client_credentials(config: FirecrestConfig) -> TokenSource:
    """pyfirecrest's client-credentials token source for ``config``."""
    from firecrest import ClientCredentialsAuth  # the optional "firecrest" extra

    auth = ClientCredentialsAuth(
        config.client_id,
        config.client_secret.get_secret_value(),
        config.token_url,
        min_token_validity=MIN_TOKEN_VALIDITY,
    )
    auth.timeout = TOKEN_TIMEOUT
    # one INFO line per request otherwise ("Reusing token, will renew after ...")
    auth.disable_client_logging = True
    return auth


class TransientError(Exception):
    """A failure worth retrying; ``ambiguous``: the request may have been carried out."""

    def __init__(self, message: str, *, ambiguous: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class OutcomeUnknown(BackendUnavailable):
    """A request may or may not have been carried out, and was not resent."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after or 5.0)


class BearerAuth:
    """Hands pyfirecrest a bearer header; fetches tokens off the event loop.

    pyfirecrest's ClientCredentialsAuth asks the token server with blocking
    ``requests``; running it in a thread keeps the JID answering meanwhile.
    """

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the token or the client secret
        return f"<{type(self).__name__} {type(self._source).__name__}>"

    async def auth_headers(self) -> dict[str, str]:
        """The Authorization header of the next request."""
        async with self._lock:
            token = await asyncio.to_thread(self._source.get_access_token)
        return {"Authorization": f"Bearer {token}"}

    def invalidate(self) -> None:
        """Drop a cached token so the next request fetches a fresh one (after a 401)."""
        invalidate = getattr(self._source, "invalidate", None)
        if callable(invalidate):
            invalidate()
            return
        # ClientCredentialsAuth keeps its token in these two attributes.
        if hasattr(self._source, "_access_token"):
            self._source._access_token = None  # type: ignore[attr-defined]
        if hasattr(self._source, "_token_expiration_ts"):
            self._source._token_expiration_ts = None  # type: ignore[attr-defined]


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        if resp.status_code == 503 and "unhealthy" in error_text(resp).lower():
            return UNHEALTHY_GATE_RETRY
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How long a call keeps trying: the one retry policy of the FirecREST client.

    A call stops after ``max_attempts`` attempts or ``budget`` seconds, whichever
    comes first, with exponential backoff (and jitter) from ``backoff_initial``
    up to ``backoff_max`` seconds between attempts.
    """

    max_attempts: int
    budget: float
    backoff_initial: float
    backoff_max: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise FirecrestConfigError("max_attempts must be at least 1")

    def retrying(self, attempts: int | None = None) -> AsyncRetrying:
        """A tenacity loop that retries :class:`TransientError`, at most ``attempts`` times."""
        return AsyncRetrying(
            stop=stop_after_attempt(attempts or self.max_attempts) | stop_after_delay(self.budget),
            wait=wait_exponential_jitter(
                initial=self.backoff_initial, max=self.backoff_max, jitter=self.backoff_initial
            ),
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )


class FirecrestTransport:
    """Requests to one FirecREST v2 gateway under one retry policy.

    Args:
        url: the gateway's base URL.
        auth: the bearer tokens of every request.
        policy: how long a call keeps trying.
        request_timeout: seconds one request may take.
        verify: TLS verification (``True``, ``False`` or a CA bundle path).
    """

    def __init__(
        self,
        url: str,
        auth: BearerAuth,
        policy: RetryPolicy,
        *,
        request_timeout: float,
        verify: bool | str = True,
    ) -> None:
        from firecrest.v2 import AsyncFirecrest  # the optional "firecrest" extra

        self.auth = auth
        self.policy = policy
        self.client = AsyncFirecrest(firecrest_url=url, authorization=auth, verify=verify)
        self.client.timeout = request_timeout
        # 429s come back to this transport's own retry policy instead of
        # pyfirecrest's unbounded rate-limit loop.
        self.client.num_retries_rate_limit = 0
        self.client.disable_client_logging = True

    def get(self, endpoint: str, params: dict[str, Any] | None = None) -> Send:
        """A GET of ``endpoint`` for :meth:`call`."""

        async def send() -> httpx.Response:
            return await self.client._get_request(endpoint=endpoint, params=params)

        return send

    def post(self, endpoint: str, json_data: dict[str, Any]) -> Send:
        """A POST of ``json_data`` to ``endpoint`` for :meth:`call`."""

        async def send() -> httpx.Response:
            return await self.client._post_request(endpoint=endpoint, json_data=json_data)

        return send

    def upload(self, endpoint: str, params: dict[str, Any], name: str, content: bytes) -> Send:
        """A multipart POST of one file (form field ``file``) to ``endpoint`` for :meth:`call`."""

        async def send() -> httpx.Response:
            return await self.client._post_request(endpoint=endpoint, params=params,
                                                   files={"file": (name, content)})

        return send

    def delete_with(self, endpoint: str, params: dict[str, Any]) -> Send:
        """A DELETE of ``endpoint`` with query ``params`` for :meth:`call`."""

        async def send() -> httpx.Response:
            return await self.client._delete_request(endpoint=endpoint, params=params)

        return send

    def delete(self, endpoint: str) -> Send:
        """A DELETE of ``endpoint`` for :meth:`call`."""

        async def send() -> httpx.Response:
            return await self.client._delete_request(endpoint=endpoint)

        return send

    async def call(
        self,
        what: str,
        send: Send,
        *,
        before_retry: Callable[[TransientError], Awaitable[httpx.Response | None]] | None = None,
        attempts: int | None = None,
        timeout: float | None = None,
        definite: Definite | None = None,
        resend_ambiguous: bool = True,
    ) -> httpx.Response:
        """Send with retries; returns any non-transient response (the caller checks it).

        ``before_retry`` runs before each repeat with the failure that caused it
        and may return a response to use instead of sending again. ``timeout``
        bounds each attempt (default: the client's request timeout);
        ``definite(resp)`` marks answers of a retried status as final. With
        ``resend_ambiguous=False`` a failure after which the request may have
        been carried out raises :class:`OutcomeUnknown` at once.
        """
        last: TransientError | None = None
        try:
            async for attempt in self.policy.retrying(attempts):
                with attempt:
                    if last is not None and before_retry is not None:
                        replacement = await before_retry(last)
                        if replacement is not None:
                            return replacement
                    try:
                        return await self._attempt(what, send, timeout, definite)
                    except TransientError as err:
                        last = err
                        if err.ambiguous and not resend_ambiguous:
                            raise OutcomeUnknown(str(err), err.retry_after) from err
                        raise
        except TransientError as err:
            number = attempt.retry_state.attempt_number
            raise BackendUnavailable(
                f"FirecREST {what} failed after {number} attempt(s): {err}",
                retry_after=err.retry_after or 5.0,
            ) from err
        raise AssertionError("unreachable")  # pragma: no cover - tenacity always ends above

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close_session()

    async def _attempt(
        self, what: str, send: Send, timeout: float | None, definite: Definite | None
    ) -> httpx.Response:
        resp = await self._send(what, send, timeout)
        if resp.status_code == 401:
            log.info("FirecREST %s: token refused (401), fetching a new one", what)
            self.auth.invalidate()
            resp = await self._send(what, send, timeout)
            if resp.status_code == 401:
                raise BackendUnavailable(
                    f"FirecREST {what}: the access token was refused twice ({error_text(resp)})",
                    retry_after=30.0,
                )
        if resp.status_code in _TRANSIENT_STATUS and not (definite and definite(resp)):
            raise TransientError(
                f"{what}: {error_text(resp)}",
                ambiguous=resp.status_code not in _NOTHING_RAN_STATUS,
                retry_after=_retry_after(resp),
            )
        return resp

    async def _send(self, what: str, send: Send, timeout: float | None) -> httpx.Response:
        """One request; transport failures and token-server outages become TransientError."""
        import requests
        from firecrest.FirecrestException import ClientsCredentialsException

        try:
            if timeout is None:
                return await send()
            async with asyncio.timeout(timeout):
                return await send()
        except TimeoutError as err:
            raise TransientError(
                f"{what}: no answer from FirecREST within {timeout:g} s", ambiguous=True
            ) from err
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
            raise TransientError(
                f"{what}: cannot connect to FirecREST ({type(err).__name__})"
            ) from err
        except (httpx.TimeoutException, httpx.TransportError) as err:
            # the request may have reached the server: the outcome is unknown
            raise TransientError(
                f"{what}: no answer from FirecREST ({type(err).__name__})", ambiguous=True
            ) from err
        except requests.RequestException as err:
            raise TransientError(
                f"{what}: cannot reach the token server ({type(err).__name__})"
            ) from err
        except ClientsCredentialsException as err:
            status = err.responses[-1].status_code if err.responses else 0
            if status >= 500 or status in (408, 429):
                raise TransientError(f"{what}: the token server answered HTTP {status}") from err
            raise BackendUnavailable(
                f"FirecREST {what}: the token server refused the client credentials "
                f"(HTTP {status}); check {ENV_CLIENT_ID}, {ENV_CLIENT_SECRET} and {ENV_TOKEN_URL}",
                retry_after=60.0,
            ) from err
