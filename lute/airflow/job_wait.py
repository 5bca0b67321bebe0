"""Following a job to its end: what the operator's blocking wait and the trigger share.

Both long-poll ``POST /wait`` under one policy for riding out a JID outage
(:meth:`~lute.airflow.retry_policy.RetryPolicy.outage`: exponential backoff
honouring ``Retry-After``, for up to ``outage_timeout`` seconds in a row) and
read each answer the same way. :func:`wait_in_worker` is the worker's loop:
its polls end in time for the job's log to be read live between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lute.airflow.client import MAX_WAIT_SECONDS, JIDClient
from lute.airflow.jid_errors import JIDError, JIDUnavailableError
from lute.airflow.live_log import LiveLog, read_now
from lute.job_status import FINISHED_STATUSES


class JobForgottenError(JIDError):
    """The JID answered a wait without the job: it no longer knows it."""


class WaitFailedError(Exception):
    """The worker's wait gave up; the message says why."""


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



def wait_in_worker(
    client: JIDClient,
    job: dict[str, Any],
    *,
    poll: float,
    live: LiveLog,
    log: Any,
    seen: Callable[[dict[str, Any]], None],
    seconds: float | None = None,
) -> dict[str, Any]:
    """Long-poll until the job ends (or ``seconds`` passed), showing its log live.

    ``seen`` gets every fresher document. Raises :class:`WaitFailedError` if a
    wait fails (after ``client``'s retries), saying why.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    while not has_ended(job):
        timeout = min(poll, live.seconds_to_next())
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            timeout = min(timeout, left)
        since = time.monotonic()
        try:
            job = followed(job, client.wait([job], timeout=timeout), log)
        except JIDUnavailableError as exc:
            raise WaitFailedError(outage_message(exc, since)) from exc
        except JobForgottenError as exc:
            raise WaitFailedError(str(exc)) from exc
        except JIDError as exc:
            raise WaitFailedError(f"JID error while waiting: {exc}") from exc
        seen(job)
        read_now(live, client, job, log)
    return job
