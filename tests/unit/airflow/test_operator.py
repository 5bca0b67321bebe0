"""Operator behaviour that needs no Airflow run: blocking waits through outages, failure text."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from lute.airflow.client import JIDClient, RetryPolicy
from lute.airflow.operator import JIDSlurmOperator, log_tail


def test_blocking_wait_gives_up_after_the_outage_timeout() -> None:
    op = JIDSlurmOperator(task_id="Tester", deferrable=False, poke_interval=1, outage_timeout=1.0)
    policy = RetryPolicy(attempts=2, budget_seconds=2, initial_backoff=0.01, max_backoff=0.05)
    # Nothing listens on loopback port 9: every call is a connection error.
    with (
        JIDClient("http://127.0.0.1:9", token="t", retry=policy) as client,
        pytest.raises(AirflowException, match="JID unavailable"),
    ):
        op._wait_blocking(client, {"_id": "a", "status": "RUNNING", "experiment": "x"})


def test_a_finished_job_needs_no_wait() -> None:
    op = JIDSlurmOperator(task_id="Tester", deferrable=False)
    with JIDClient("http://127.0.0.1:9", token="t") as client:
        job = {"_id": "a", "status": "DONE", "experiment": "x"}
        assert op._wait_blocking(client, job) is job


def test_log_tail_keeps_the_last_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n"
    assert log_tail(text, 3) == "line 97\nline 98\nline 99"
    assert log_tail("", 3) == ""
