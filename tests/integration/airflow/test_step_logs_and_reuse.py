"""The job's own log in Airflow's task log (the Logs tab), and reruns that reuse DONE jobs.

Task logs are read through the REST API. One run defers every step (a DONE
job ends the task from the trigger, so the lines come from the triggerer),
one waits in the worker; both are started at once. A workflow run again with
``jid_skip_done`` submits nothing.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.airflow.test_real_airflow import _follow, _jid_log, _task_log, _trigger
from tests.unit.airflow.support import run_conf, write_test_config

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


def test_a_rerun_with_skip_done_submits_no_job(airflow_stack) -> None:
    client = airflow_stack.client
    # a config of its own: no earlier run of this module used it
    config = write_test_config(airflow_stack.root / "cfg_skip")
    first = run_conf(config, jid_defer_after=0, jid_skip_done=True)
    run_id = _trigger(client, "lute_test", first)
    state, seen = _follow(client, "lute_test", run_id)
    assert state == "success", seen
    earlier = {j["def"]["name"]: j for j in airflow_stack.jid_jobs(first["ARP_ROOT_JOB_ID"])}
    assert sorted(earlier) == sorted(seen)  # nothing to reuse yet: every step ran

    again = run_conf(config, jid_defer_after=0, jid_skip_done=True)
    run_id = _trigger(client, "lute_test", again)
    state, seen = _follow(client, "lute_test", run_id)
    assert state == "success", seen
    assert airflow_stack.jid_jobs(again["ARP_ROOT_JOB_ID"]) == []  # no job submitted
    for task_id, states in seen.items():
        assert "deferred" not in states, (task_id, states)
        job = earlier[task_id]
        log = _task_log(client, "lute_test", run_id, task_id)
        assert f"skipped {task_id}: job {job['tool_id']}" in log, (task_id, log[-3000:])
        assert client.xcom("lute_test", run_id, task_id, "log") == _jid_log(airflow_stack, job)
        assert client.xcom("lute_test", run_id, task_id, "return_value") == job["tool_id"]


def test_steps_started_in_the_triggerer_reuse_done_jobs_there(airflow_stack) -> None:
    client = airflow_stack.client
    dag_id = "lute_bench_parallel_triggerer"
    config = write_test_config(airflow_stack.root / "cfg_skip_triggerer")
    first = run_conf(config)
    state, seen = _follow(client, dag_id, _trigger(client, dag_id, first))
    assert state == "success", seen
    again = run_conf(config, jid_skip_done=True)
    run_id = _trigger(client, dag_id, again)
    state, seen = _follow(client, dag_id, run_id)
    assert state == "success", seen
    assert airflow_stack.jid_jobs(again["ARP_ROOT_JOB_ID"]) == []
    done = {j["tool_id"] for j in airflow_stack.jid_jobs(first["ARP_ROOT_JOB_ID"])}
    for task_id in seen:
        log = _task_log(client, dag_id, run_id, task_id)
        assert "skipped Sleeper: job " in log, (task_id, log[-3000:])
        assert client.xcom(dag_id, run_id, task_id, "return_value") in done
