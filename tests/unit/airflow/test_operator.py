"""Operator behaviour that needs no Airflow run: blocking waits through outages, failure text."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from lute.airflow.client import JIDClient, RetryPolicy
from lute.airflow.live_log import LiveLog
from lute.airflow.operator import JIDSlurmOperator, inline_wait, log_tail


def test_blocking_wait_gives_up_after_the_outage_timeout() -> None:
    op = JIDSlurmOperator(task_id="Tester", deferrable=False, poke_interval=1, outage_timeout=1.0)
    policy = RetryPolicy(attempts=2, budget_seconds=2, initial_backoff=0.01, max_backoff=0.05)
    # Nothing listens on loopback port 9: every call is a connection error.
    with (
        JIDClient("http://127.0.0.1:9", token="t", retry=policy) as client,
        pytest.raises(AirflowException, match="JID unavailable"),
    ):
        op._wait_blocking(
            client, {"_id": "a", "status": "RUNNING", "experiment": "x"}, LiveLog("Tester", 0)
        )


def test_a_finished_job_needs_no_wait() -> None:
    op = JIDSlurmOperator(task_id="Tester", deferrable=False)
    with JIDClient("http://127.0.0.1:9", token="t") as client:
        job = {"_id": "a", "status": "DONE", "experiment": "x"}
        assert op._wait_blocking(client, job, LiveLog("Tester", 0)) is job


def test_log_tail_keeps_the_last_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n"
    assert log_tail(text, 3) == "line 97\nline 98\nline 99"
    assert log_tail("", 3) == ""


def test_defer_after_comes_from_the_conf_when_given() -> None:
    op = JIDSlurmOperator(task_id="Tester", defer_after=3.5)
    assert op._defer_after_for({}) == 3.5
    assert op._defer_after_for({"jid_defer_after": 0}) == 0.0
    assert op._defer_after_for({"jid_defer_after": "1.5"}) == 1.5
    with pytest.raises(AirflowException, match="jid_defer_after"):
        op._defer_after_for({"jid_defer_after": "soon"})
    with pytest.raises(AirflowException, match=">= 0"):
        op._defer_after_for({"jid_defer_after": -1})
    with pytest.raises(ValueError, match="defer_after"):
        JIDSlurmOperator(task_id="Tester", defer_after=-1)


def test_inline_wait_gives_up_on_an_unreachable_jid_and_returns_the_job() -> None:
    op = JIDSlurmOperator(task_id="Tester")
    policy = RetryPolicy(attempts=1, budget_seconds=0)
    job = {"_id": "a", "status": "RUNNING", "experiment": "x"}
    with JIDClient("http://127.0.0.1:9", token="t", retry=policy) as client:
        # The trigger waits out outages; the inline wait just hands over.
        assert op._wait_inline(client, job, 5.0, LiveLog("Tester", 0)) is job


def test_start_in_triggerer_ends_the_task_from_the_trigger_by_default() -> None:
    op = JIDSlurmOperator(task_id="Tester", start_in_triggerer=True)
    kwargs = op.start_trigger_args.trigger_kwargs
    assert kwargs["end_from_trigger"] is True
    assert kwargs["push_return_value"] is True
    off = JIDSlurmOperator(
        task_id="Tester", start_in_triggerer=True, end_from_trigger=False, do_xcom_push=False
    )
    assert off.start_trigger_args.trigger_kwargs["end_from_trigger"] is False
    assert off.start_trigger_args.trigger_kwargs["push_return_value"] is False


def test_a_task_that_usually_runs_long_defers_at_once() -> None:
    assert inline_wait(1.0, None) == 1.0  # no history: the default
    assert inline_wait(1.0, 0.4) == 1.0  # short jobs end during the inline wait
    assert inline_wait(1.0, 5.9) == 1.0
    assert inline_wait(1.0, 6.0) == 0.0  # would defer anyway: free the slot now
    assert inline_wait(1.0, 1200.0) == 0.0
    assert inline_wait(0.0, None) == 0.0


def test_an_explicit_conf_wait_is_used_without_asking_the_jid() -> None:
    op = JIDSlurmOperator(task_id="Tester")
    # nothing listens on port 9: asking would fail, so it must not ask
    with JIDClient("http://127.0.0.1:9", token="t") as client:
        job = {"_id": "a", "status": "RUNNING", "experiment": "x", "def": {"name": "Tester"}}
        assert op._inline_wait_for(client, job, {"jid_defer_after": 2.5}) == 2.5
        # without the key it asks once; an unreachable JID leaves the default
        assert op._inline_wait_for(client, job, {}) == 1.0


class _CountingTI:
    """A task instance whose run has ``waiting`` steps without a worker slot."""

    dag_id = "d"
    run_id = "r"

    def __init__(self, waiting: int | Exception) -> None:
        self.waiting = waiting
        self.asked: list[dict] = []

    def get_ti_count(self, **criteria: object) -> int:
        self.asked.append(criteria)
        if isinstance(self.waiting, Exception):
            raise self.waiting
        return self.waiting


def test_a_step_defers_at_once_while_other_steps_of_its_run_wait_for_a_slot() -> None:
    op = JIDSlurmOperator(task_id="Tester")
    job = {"_id": "a", "status": "RUNNING", "experiment": "x", "def": {"name": "Tester"}}
    crowded = _CountingTI(3)
    with JIDClient("http://127.0.0.1:9", token="t") as client:
        assert op._inline_wait_for(client, job, {}, {"ti": crowded}) == 0.0
        assert crowded.asked == [
            {"dag_id": "d", "run_ids": ["r"], "states": ["scheduled", "queued"]}
        ]
        # a free run, or a count that cannot be had, keeps the inline wait
        assert op._inline_wait_for(client, job, {}, {"ti": _CountingTI(0)}) == 1.0
        broken = _CountingTI(RuntimeError("no supervisor"))
        assert op._inline_wait_for(client, job, {}, {"ti": broken}) == 1.0
        # an explicit conf wait is not second-guessed
        assert op._inline_wait_for(client, job, {"jid_defer_after": 2.5}, {"ti": crowded}) == 2.5
        assert len(crowded.asked) == 1
