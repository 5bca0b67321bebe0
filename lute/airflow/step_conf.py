"""What a run's ``conf`` may say about how its steps run: dry run, deferral, the ARP token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk.log import mask_secret

DEFERRABLE_CONF_KEY = "jid_deferrable"
"""A run's conf may set this to true/false to override ``deferrable`` (benchmarks)."""

DEFER_AFTER_CONF_KEY = "jid_defer_after"
"""A run's conf may set this (seconds, >= 0) to override ``defer_after``."""

SKIP_DONE_CONF_KEY = "jid_skip_done"
"""A run's conf sets this true (``lute-launch-airflow --skip-done``) to reuse earlier DONE jobs."""

LONG_STEP_MARGIN = 5.0
"""A managed task whose recent jobs took ``defer_after`` + this many seconds or more
defers at once: waiting in the worker first would only hold a slot."""


def truthy(value: Any) -> bool:
    """A conf flag as a bool (``"true"``, ``"1"``, ``"yes"``, ``"on"`` or a true value)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def is_dry_run(conf: Mapping[str, Any]) -> bool:
    """True if the run only asks the JID to render its submissions."""
    return truthy(conf.get("dryrun"))


def skips_done(conf: Mapping[str, Any]) -> bool:
    """True if the run reuses a step's earlier DONE job instead of submitting it again."""
    return truthy(conf.get(SKIP_DONE_CONF_KEY))


def deferrable_for(conf: Mapping[str, Any], default: bool) -> bool:
    """Whether a step defers: the conf's ``jid_deferrable`` if set, else ``default``."""
    if conf.get(DEFERRABLE_CONF_KEY) is not None:
        return truthy(conf[DEFERRABLE_CONF_KEY])
    return default


def seconds_for(conf: Mapping[str, Any], key: str, default: float) -> float:
    """Seconds the conf's ``key`` gives (a number >= 0), else ``default``.

    Raises ValueError naming the key if the conf's value is not a number >= 0.
    """
    value = conf.get(key)
    if value is None:
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"conf[{key!r}] must be a number of seconds, not {value!r}") from None
    if not seconds >= 0:
        raise ValueError(f"conf[{key!r}] must be >= 0, not {value!r}")
    return seconds


def defer_after_for(conf: Mapping[str, Any], default: float) -> float:
    """Seconds to wait in the worker: the conf's ``jid_defer_after`` if set, else ``default``."""
    return seconds_for(conf, DEFER_AFTER_CONF_KEY, default)


def inline_wait(defer_after: float, typical_seconds: float | None) -> float:
    """How long a deferrable step waits in the worker before deferring.

    ``defer_after``, unless the managed task's recent jobs typically took
    ``defer_after`` + LONG_STEP_MARGIN seconds or more: such a step would
    defer anyway, so it defers at once and frees its worker slot sooner.
    """
    if typical_seconds is not None and typical_seconds >= defer_after + LONG_STEP_MARGIN:
        return 0.0
    return defer_after


def conf_token(conf: Mapping[str, Any]) -> str | None:
    """The JID token the run's conf carries (ARP compatibility), registered as a secret."""
    token = conf.get("Authorization")
    if not token:
        return None
    token = str(token)
    # A connection password is masked in task logs by Airflow; a token from
    # the conf is not, so register it (with and without "Bearer ").
    mask_secret(token)
    if token.lower().startswith("bearer "):
        mask_secret(token[7:].strip())
    return token
