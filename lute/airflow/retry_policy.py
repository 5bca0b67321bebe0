"""One backoff policy for every wait on the JID: short client retries and long outages alike.

Exponential backoff with jitter, or the server's ``Retry-After`` when it sent
one, bounded by a number of attempts and a time budget. The JID clients retry
each call under one; a step's long wait for its job (the operator's blocking
wait and the trigger) rides out an outage under :meth:`RetryPolicy.outage`.
Only :class:`~lute.airflow.jid_errors.JIDUnavailableError` (connection
errors, 429, 502, 503, 504) is retried.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from tenacity import (
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
)

from lute.airflow.jid_errors import JIDUnavailableError


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry connection errors, 429, 502, 503 and 504.

    ``attempts`` or ``budget_seconds`` None: no bound of that kind.
    """

    attempts: int | None = 8
    budget_seconds: float | None = 120.0
    initial_backoff: float = 0.5
    max_backoff: float = 30.0

    @classmethod
    def outage(
        cls, timeout: float | None, initial_backoff: float = 1.0, max_backoff: float = 60.0
    ) -> RetryPolicy:
        """A long wait's policy: any number of attempts for up to ``timeout`` seconds in a row."""
        return cls(
            attempts=None, budget_seconds=timeout,
            initial_backoff=initial_backoff, max_backoff=max_backoff,
        )

    def wait_seconds(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or the server's Retry-After if it gave one."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, JIDUnavailableError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_backoff)
        base = min(self.initial_backoff * 2 ** (state.attempt_number - 1), self.max_backoff)
        # Jitter keeps many operators that lost the JID at once from returning in step.
        return base * (0.5 + random.random() / 2)  # noqa: S311 - not cryptographic

    def stop(self) -> Any:
        """The tenacity stop condition of this policy."""
        by_attempts = stop_never if self.attempts is None else stop_after_attempt(self.attempts)
        if self.budget_seconds is None:
            return by_attempts
        return by_attempts | stop_after_delay(self.budget_seconds)

    def tenacity_args(self, log: logging.Logger | None = None) -> dict[str, Any]:
        """Keyword arguments of ``tenacity.Retrying``/``AsyncRetrying`` for this policy.

        With ``log``, every retry is logged (a long wait says why it is stalled);
        the last error is re-raised as it is.
        """
        args: dict[str, Any] = {
            "retry": retry_if_exception_type(JIDUnavailableError),
            "wait": self.wait_seconds,
            "stop": self.stop(),
            "reraise": True,
        }
        if log is not None:
            def before_sleep(state: RetryCallState) -> None:
                exc = state.outcome.exception() if state.outcome else None
                delay = state.next_action.sleep if state.next_action else 0.0
                log.warning("JID unavailable (%s); retrying in %.1f s", exc, delay)

            args["before_sleep"] = before_sleep
        return args


NO_RETRY = RetryPolicy(attempts=1, budget_seconds=0.0)
"""One attempt: for hints that must not delay the caller, and callers retrying themselves."""
