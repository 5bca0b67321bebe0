"""The statuses a managed-task job goes through, shared by every part that reads them.

ARP's five statuses: a job is *active* while it waits or runs and *finished*
once it can no longer change. The JID stores and reports them, the Airflow
operator and trigger wait for a finished one, and the launcher follows active
jobs' logs; they all take the sets from here so they cannot disagree.
"""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):  # noqa: UP042 - str mix-in: JSON and == with strings
    """ARP job statuses."""

    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    EXITED = "EXITED"

    @property
    def finished(self) -> bool:
        """True once the job can no longer change state."""
        return self.value in FINISHED_STATUSES


ACTIVE_STATUSES: frozenset[str] = frozenset({JobStatus.SUBMITTED.value, JobStatus.RUNNING.value})
"""Statuses of a job that has not ended yet (as plain strings, as documents carry them)."""

FINISHED_STATUSES: frozenset[str] = frozenset(
    {JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.EXITED.value}
)
"""Statuses of a job that can no longer change."""
