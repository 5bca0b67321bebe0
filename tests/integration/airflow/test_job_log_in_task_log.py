"""The job's own log in Airflow's task log (the Logs tab), read through the REST API.

One run defers every step (a DONE job ends the task from the trigger, so the
lines come from the triggerer), one waits in the worker; both are started at
once so the module costs one stack and about one run.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.airflow.test_real_airflow import _follow, _jid_log, _task_log, _trigger
from tests.unit.airflow.support import run_conf

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]


def _job_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_the_task_log_shows_the_job_log_of_deferred_and_inline_steps(airflow_stack) -> None:
    client = airflow_stack.client
    confs = {
        "deferred": run_conf(airflow_stack.config, jid_defer_after=0),
        "inline": run_conf(airflow_stack.config, jid_defer_after=60),
    }
    runs = {mode: _trigger(client, "lute_test", conf) for mode, conf in confs.items()}
    for mode, run_id in runs.items():
        state, seen = _follow(client, "lute_test", run_id)
        assert state == "success", (mode, seen)
        if mode == "deferred":
            assert "deferred" in seen["Tester"], seen
        else:
            assert "deferred" not in seen["Tester"], seen
        jobs = {j["def"]["name"]: j for j in airflow_stack.jid_jobs(confs[mode]["ARP_ROOT_JOB_ID"])}
        for task_id in ("Tester", "ReadTester"):
            job_log = _jid_log(airflow_stack, jobs[task_id])
            lines = _job_lines(job_log)
            assert lines, (mode, task_id)
            task_log = _task_log(client, "lute_test", run_id, task_id)
            for line in (lines[0], lines[-1]):
                # the task log is served JSON-encoded: compare encoded forms
                encoded = json.dumps(f"[{task_id}] {line}")[1:-1]
                assert encoded in task_log, (mode, task_id, line, task_log[-3000:])
            # XCom 'log' is unchanged: the job's log as the JID serves it
            assert client.xcom("lute_test", run_id, task_id, "log") == job_log
