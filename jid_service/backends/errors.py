"""How a backend fails, in terms the JID answers (the table in ``jid_service.answers``)."""

from __future__ import annotations


class BackendError(Exception):
    """A backend failed in a way the caller can act on."""


class BackendUnavailable(BackendError):  # noqa: N818 - public name other parts use
    """The scheduler or gateway cannot be reached now; retry later (HTTP 503)."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SubmissionRejected(BackendError):  # noqa: N818 - public name other parts use
    """The scheduler refused the job (HTTP 422): nothing was submitted."""


class SubmissionOutcomeUnknown(BackendUnavailable):
    """A submission went out, its answer was lost and the job is not listed (yet).

    Sending it again could start the job twice: the claim is kept, and
    :meth:`Backend.find_submitted` settles it later (the job is adopted once
    it is listed; a claim it can show was never submitted is dropped).
    """


class StagingFailed(BackendError):  # noqa: N818 - public name other parts use
    """A file could not be staged (missing, unreadable, refused by the gateway).

    Before a submission it refuses the job (HTTP 422); after the job it fails it.
    """
