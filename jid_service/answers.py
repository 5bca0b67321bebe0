"""How the API answers: the envelope, and the one table of refusals.

Every answer is ``{"success": bool, "value": ..., "error": str | null}``.
:data:`REFUSALS` maps each exception class the JID can meet while answering
(its own :mod:`jid_service.errors`, the backend errors, a job store out of
reach, a malformed request) to its HTTP status, message and headers;
``Retry-After`` is written by :func:`retry_after_header` alone. A body that is
not JSON at all is told apart from a JSON body that fails validation (400, not
422) by :func:`body_not_json`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from jid_service.backends.base import BackendError, BackendUnavailable, SubmissionRejected
from jid_service.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    JIDError,
    NotFoundError,
    OverloadedError,
    UnauthenticatedError,
    UnavailableError,
)

log = logging.getLogger(__name__)


def ok(value: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """The success envelope."""
    return JSONResponse({"success": True, "value": value, "error": None},
                        status_code=status_code, headers=headers)


def failure(status_code: int, error: str | None, headers: Mapping[str, str] | None = None,
            value: Any = None) -> JSONResponse:
    """The failure envelope (``value`` is null except where a report explains the failure)."""
    return JSONResponse({"success": False, "value": value, "error": error},
                        status_code=status_code, headers=dict(headers or {}))


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, at least 1."""
    return {"Retry-After": str(max(1, round(seconds)))}


def describe_validation(exc: Exception) -> str:
    """The first few problems of a request body or query, each with where it is."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def body_not_json(exc: Exception) -> str | None:
    """Why the request body is not JSON at all, or None when it is (or is not the problem).

    FastAPI reports both as a :class:`RequestValidationError`: JSON that does
    not parse as ``json_invalid``, a body sent under another content type as
    raw bytes that fail the model.
    """
    assert isinstance(exc, RequestValidationError)
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if not loc or loc[0] != "body":
            continue
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "JSON decode error")
            where = f" at character {loc[1]}" if len(loc) > 1 else ""
            return f"the body is not valid JSON: {reason}{where}"
        if loc == ("body",) and isinstance(err.get("input"), bytes):
            return "the body is not JSON: send it as Content-Type: application/json"
    return None


def _malformed_body(exc: Exception) -> Refusal | None:
    return _NOT_JSON if body_not_json(exc) is not None else None


@dataclass(frozen=True)
class Refusal:
    """How one kind of error is answered."""

    status: int
    describe: Callable[[Exception], str] = str
    retry_after: float | None = None
    """Seconds to advise when the error itself names none (None: no ``Retry-After``)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    logged: bool = False
    """Worth a warning in the daemon's log (the caller cannot fix it)."""
    narrower: Callable[[Exception], Refusal | None] | None = None
    """A more specific answer for some errors of the class (None: this row answers all)."""


_STORE_DOWN = Refusal(503, lambda _exc: "job store unavailable", retry_after=5, logged=True)
_NOT_JSON = Refusal(400, lambda exc: body_not_json(exc) or "the body is not JSON")

REFUSALS: dict[type[Exception], Refusal] = {
    UnauthenticatedError: Refusal(401, headers={"WWW-Authenticate": "Bearer"}),
    ForbiddenError: Refusal(403),
    NotFoundError: Refusal(404),
    ConflictError: Refusal(409),
    InvalidRequestError: Refusal(422),
    RequestValidationError: Refusal(422, describe_validation, narrower=_malformed_body),
    UnavailableError: Refusal(503),
    OverloadedError: Refusal(503),
    # the scheduler refused the job (bad partition, an option it cannot take):
    # nothing was submitted, and sending it again would be refused again
    SubmissionRejected: Refusal(422, lambda exc: f"the scheduler rejected the job: {exc}"),
    BackendUnavailable: Refusal(503, lambda exc: f"backend unavailable: {exc}"),
    BackendError: Refusal(503, lambda exc: f"backend error: {exc}", retry_after=10,
                          logged=True),
    OperationalError: _STORE_DOWN,
    PoolTimeout: _STORE_DOWN,
    DBAPIError: _STORE_DOWN,
    # the store refused a value (a NUL in a PostgreSQL text column): the
    # caller's data, not an outage to retry; the models keep callers' from here
    DataError: Refusal(422, lambda _exc: "a value of the request cannot be stored",
                       logged=True),
}
"""The one table: error class -> answer (the most specific class of an error wins)."""


def refusal_for(exc: Exception) -> Refusal:
    """The table's row for ``exc`` (or its narrower answer); KeyError when the table has none."""
    for cls in type(exc).__mro__:
        if cls in REFUSALS:
            refusal = REFUSALS[cls]
            narrowed = refusal.narrower(exc) if refusal.narrower is not None else None
            return narrowed or refusal
    raise KeyError(type(exc).__name__)


def status_of(exc: Exception) -> int:
    """The HTTP status ``exc`` is answered with."""
    return refusal_for(exc).status


def _retry_after(exc: Exception, refusal: Refusal) -> float | None:
    if isinstance(exc, JIDError | BackendUnavailable) and exc.retry_after is not None:
        return exc.retry_after
    return refusal.retry_after


def answer(exc: Exception) -> JSONResponse:
    """The failure envelope, status and headers the table gives ``exc``."""
    refusal = refusal_for(exc)
    message = refusal.describe(exc)
    if refusal.logged:
        # the type only: a store error's text can carry its URL
        log.warning("%s (%s)", message, type(exc).__name__)
    headers = dict(refusal.headers)
    seconds = _retry_after(exc, refusal)
    if seconds is not None:
        headers.update(retry_after_header(seconds))
    return failure(refusal.status, message, headers)
