"""Following a job to its end: what the operator's blocking wait and the trigger share.

Both long-poll ``POST /wait`` under one policy for riding out a JID outage
(:meth:`~lute.airflow.retry_policy.RetryPolicy.outage`: exponential backoff
honouring ``Retry-After``, for up to ``outage_timeout`` seconds in a row) and
read each answer the same way.
"""

from __future__ import annotations

import time
from typing import Any

from lute.airflow.client import MAX_WAIT_SECONDS
from lute.airflow.jid_errors import JIDError, JIDUnavailableError
from lute.job_status import FINISHED_STATUSES


class JobForgottenError(JIDError):
    """The JID answered a wait without the job: it no longer knows it."""


def has_ended(job: dict[str, Any]) -> bool:
    """True once the job's status can no longer change."""
    return job.get("status") in FINISHED_STATUSES


def followed(job: dict[str, Any], fresh: list[dict[str, Any]], log: Any) -> dict[str, Any]:
    """The job's document after a wait answered ``fresh``; a status change is logged."""
    if not fresh:
        raise JobForgottenError("JID no longer knows the job")
    new = fresh[0]
    if new.get("status") != job.get("status"):
        log.info(
            "job %s (%s): %s -> %s",
            new.get("tool_id"), new.get("_id"), job.get("status"), new.get("status"),
        )
    return new


def outage_message(exc: JIDUnavailableError, since: float) -> str:
    """Why a wait gave up: the JID stayed unavailable since ``since`` (``time.monotonic``)."""
    return f"JID unavailable for {time.monotonic() - since:.0f} s: {exc}"


def poll_seconds(poke_interval: float) -> float:
    """One long poll's timeout for a step's ``poke_interval``."""
    return min(poke_interval, MAX_WAIT_SECONDS)

