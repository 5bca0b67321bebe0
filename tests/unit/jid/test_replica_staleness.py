"""When a standby replica may answer status reads: as fresh as the polling replica's report."""

from __future__ import annotations

from jid_service.replica import STALE_AFTER, staleness
from jid_service.replica_registry import PollerState

NOW = 1_000_000.0


def _state(tick_ok_at: float | None, error: str | None = None,
           retry_after: float | None = None) -> PollerState:
    return PollerState("a/1", "a", NOW, tick_ok_at, error, retry_after, None)


def test_fresh_while_the_polling_replica_ticks() -> None:
    assert staleness(_state(NOW - 1), poll_interval=1.0, now=NOW) is None


def test_the_polling_replicas_outage_is_the_standbys() -> None:
    stale = staleness(_state(NOW - 1, "squeue timed out", 7.0), poll_interval=1.0, now=NOW)
    assert stale is not None
    assert (stale.message, stale.retry_after) == ("backend unavailable: squeue timed out", 7.0)


def test_stale_once_no_replica_ticked_for_the_bound() -> None:
    assert staleness(_state(NOW - STALE_AFTER + 1), poll_interval=1.0, now=NOW) is None
    stale = staleness(_state(NOW - STALE_AFTER - 1), poll_interval=1.0, now=NOW)
    assert stale is not None and "last reached the backend" in stale.message
    # a long poll interval stretches the bound to three intervals
    assert staleness(_state(NOW - STALE_AFTER - 1), poll_interval=60.0, now=NOW) is None


def test_stale_before_any_replica_polled() -> None:
    stale = staleness(None, poll_interval=1.0, now=NOW)
    assert stale is not None and stale.retry_after == 2.0
    assert staleness(_state(None), poll_interval=1.0, now=NOW) is not None
