"""The first deferred step of a fresh triggerer ends as fast as the ones after it.

A real Airflow 3 (this module's own stack, so its triggerer has just started)
runs the test workflow with every step deferred at once; each step's trigger
stores its XComs and ends the task. The gap between a job's end (when the JID
recorded its final status) and its task's success must not be larger for the
first step than for the later ones, and the triggerer must not report a
blocked event loop.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
import uuid
from datetime import datetime

import pytest

from tests.unit.airflow.support import run_conf

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(400)]

DAG_ID = "lute_test"
BLOCKED_LOOP_MESSAGES = (
    "event loop appears deadlocked",
    "Triggerer's async thread was blocked",
)


def _run_to_end(client, conf: dict, timeout: float = 240.0) -> tuple[str, str]:
    client.wait_for_dag(DAG_ID)
    client.unpause(DAG_ID)
    run_id = f"stall-{uuid.uuid4().hex[:10]}"
    client.trigger(DAG_ID, run_id, conf)
    deadline = time.monotonic() + timeout
    while (state := client.dag_run(DAG_ID, run_id)["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"run {run_id} still {state}"
        time.sleep(0.5)
    return run_id, state


def _job_end_times(airflow_stack, ids: list[str]) -> dict[str, float]:
    db = airflow_stack.stack.state_dir / "jid" / "jid.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT id, updated_at FROM jid_jobs WHERE id IN ({marks})", ids)
        return dict(rows.fetchall())


def test_first_deferred_step_is_not_stalled(airflow_stack) -> None:
    client = airflow_stack.client
    conf = run_conf(airflow_stack.config, jid_defer_after=0)
    run_id, state = _run_to_end(client, conf)
    assert state == "success"

    jobs = {j["def"]["name"]: j for j in airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])}
    ended = _job_end_times(airflow_stack, [j["_id"] for j in jobs.values()])
    gaps: list[tuple[float, str, float]] = []
    for ti in client.task_instances(DAG_ID, run_id):
        job_end = ended[jobs[ti["task_id"]]["_id"]]
        task_end = datetime.fromisoformat(ti["end_date"].replace("Z", "+00:00")).timestamp()
        gaps.append((job_end, ti["task_id"], task_end - job_end))
    gaps.sort()
    first, later = gaps[0], gaps[1:]
    typical = statistics.median(gap for _end, _task, gap in later)
    assert first[2] <= typical + 1.0, f"first step {first[1]} took {first[2]:.2f} s: {gaps}"

    # Each step ended in the triggerer, its XComs stored there (the path that stalled).
    logs = airflow_stack.stack.airflow_home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    for _end, task_id, _gap in gaps:
        trigger_logs = list((logs / f"task_id={task_id}").glob("attempt=1.log.trigger.*.log"))
        text = "".join(path.read_text(errors="replace") for path in trigger_logs)
        assert "stored in XCom" in text, (task_id, text[-2000:])

    log = (airflow_stack.stack.log_dir / "triggerer.log").read_text(errors="replace")
    for message in BLOCKED_LOOP_MESSAGES:
        assert message not in log, [line for line in log.splitlines() if message in line]
