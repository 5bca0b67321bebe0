"""What the JID refuses, in its own terms: each kind of refusal is one exception class.

The service, validation and auth raise these; none of them names an HTTP
status. :mod:`jid_service.answers` holds the one table that turns each class
(and the backend errors) into a status, headers and the error envelope.
"""

from __future__ import annotations


class JIDError(Exception):
    """A request the JID refuses; ``message`` is what the caller reads.

    ``retry_after`` (seconds), when set, tells the caller the same request may
    succeed later.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class UnauthenticatedError(JIDError):
    """No token, or one that is invalid or expired."""


class ForbiddenError(JIDError):
    """The token does not cover this experiment or user."""


class NotFoundError(JIDError):
    """No such job."""


class ConflictError(JIDError):
    """The request contradicts a stored job (another experiment's ``_id``; still submitting)."""


class InvalidRequestError(JIDError):
    """The request itself is wrong; the message names the offending argument."""


class UnavailableError(JIDError):
    """The JID cannot answer truthfully now (backend out of reach, submission in flux)."""


class OverloadedError(JIDError):
    """The JID holds as many requests of this kind as it serves at once."""
