"""The JID's answers decoded: its ``{"success", "value", "error"}`` envelope and typed errors.

Each HTTP failure becomes one :class:`JIDError` subclass, so callers decide by
type (retry an outage, fail on a refused token) and never by status code.
This module does not import Airflow.
"""

from __future__ import annotations

import email.utils
import ssl
import time

import httpx


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


class JIDTLSError(JIDError):
    """The JID's TLS certificate was not accepted, or the CA bundle cannot be used.

    Not an outage: retrying cannot help, so it is never retried.
    """


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


def decode_response(response: httpx.Response) -> object:
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
    # 502/504 come from a reverse proxy whose JID replica died or stalled
    # mid-request; every JID call is safe to repeat, so they are outages too.
    if status in (429, 502, 503, 504):
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


def certificate_problem(exc: BaseException) -> str | None:
    """What the TLS layer said about the peer's certificate, if that is why ``exc`` happened."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or current.reason or str(current)
        current = current.__cause__ or current.__context__
    return None


def transport_failure(exc: httpx.TransportError, method: str, path: str) -> JIDError:
    """The error of a request that never got an answer (refused, reset, timed out).

    A certificate the client does not trust is a :class:`JIDTLSError`, not an outage.
    """
    problem = certificate_problem(exc)
    if problem is not None:
        return JIDTLSError(
            f"cannot verify the JID's TLS certificate for {method} {path}: {problem}; "
            "give the CA bundle that signed it (connection extra ca_bundle, "
            "launcher jid_ca_bundle)"
        )
    return JIDUnavailableError(f"cannot reach the JID for {method} {path}: {type(exc).__name__}")
