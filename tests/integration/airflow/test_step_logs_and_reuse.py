"""The job's own log in Airflow's task log (the Logs tab), and reruns that reuse DONE jobs.

Task logs are read through the REST API. One run defers every step (a DONE
job ends the task from the trigger, so the lines come from the triggerer),
one waits in the worker; both are started at once. A step whose job runs a
while shows its job's lines in the task log before it ends, each line once.
A workflow run again with ``jid_skip_done`` submits nothing; with one parameter
of a middle step changed, it and the steps after it run again.
"""

from __future__ import annotations

import json
import time

import pytest

from lute.airflow.step_outcome import task_log_line
from tests.integration.airflow.test_real_airflow import _follow, _jid_log, _task_log, _trigger
from tests.unit.airflow.support import run_conf, write_test_config

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]


def _job_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _encoded(task_id: str, line: str) -> str:
    """A job log line as the task log (served JSON-encoded) holds it."""
    return json.dumps(task_log_line(task_id, line))[1:-1]


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
                assert _encoded(task_id, line) in task_log, (mode, task_id, line, task_log[-3000:])
            # lute-run-task's "Tester: " prefix is not doubled
            assert f"{task_id}: {task_id}: " not in task_log and f"[{task_id}]" not in task_log
            # XCom 'log' is unchanged: the job's log as the JID serves it
            assert client.xcom("lute_test", run_id, task_id, "log") == job_log


def test_a_running_step_shows_its_job_log_in_the_task_log_before_it_ends(airflow_stack) -> None:
    from lute.airflow.workflow_defn import parse_definition, store_definition

    client = airflow_stack.client
    defn = parse_definition("task_name: Sleeper")  # one step: a line every 0.5 s for 8 s
    store_definition(defn, airflow_stack.root / "defs")
    config = write_test_config(airflow_stack.root / "cfg_live", sleep_seconds=8)
    confs = {
        "deferred": run_conf(config, jid_defer_after=0, jid_log_interval=1),
        "inline": run_conf(config, jid_deferrable=False, jid_log_interval=1),
    }
    runs = {mode: _trigger(client, defn.dag_id, conf) for mode, conf in confs.items()}
    live: dict[str, str] = {}
    deadline = time.monotonic() + 180
    while len(live) < len(runs) and time.monotonic() < deadline:
        for mode, run_id in runs.items():
            if mode in live:
                continue
            (ti,) = client.task_instances(defn.dag_id, run_id)
            if ti["state"] not in ("running", "deferred"):
                continue
            log = _task_log(client, defn.dag_id, run_id, "Sleeper")
            (after,) = client.task_instances(defn.dag_id, run_id)
            # a tick line was in the task log while the step still waited
            if "Sleep: tick" in log and after["state"] in ("running", "deferred"):
                live[mode] = after["state"]
        time.sleep(0.5)
    assert live == {"deferred": "deferred", "inline": "running"}, live
    for mode, run_id in runs.items():
        state, seen = _follow(client, defn.dag_id, run_id)
        assert state == "success", (mode, seen)
        (job,) = airflow_stack.jid_jobs(confs[mode]["ARP_ROOT_JOB_ID"])
        lines = _job_lines(_jid_log(airflow_stack, job))
        assert sum("Sleep: tick" in line for line in lines) >= 10, lines
        task_log = _task_log(client, defn.dag_id, run_id, "Sleeper")
        for line in lines:
            # every line of the job's log, live or at the end, and only once
            event = f'"{_encoded("Sleeper", line)}"'
            assert task_log.count(event) == 1, (mode, line, task_log[-3000:])


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

    # one parameter of a middle step changed: it and the steps after it rerun,
    # the steps before it are reused (BinaryTester, a parallel branch, may be either)
    config.write_text(config.read_text().replace("num_lines: 100", "num_lines: 50"))
    third = run_conf(config, jid_defer_after=0, jid_skip_done=True)
    run_id = _trigger(client, "lute_test", third)
    state, seen = _follow(client, "lute_test", run_id)
    assert state == "success", seen
    reran = {j["def"]["name"] for j in airflow_stack.jid_jobs(third["ARP_ROOT_JOB_ID"])}
    assert {"WriteTester", "ReadTester"} <= reran <= {"WriteTester", "ReadTester",
                                                      "BinaryTester"}, reran
    for task_id in ("Tester", "SocketTester"):
        log = _task_log(client, "lute_test", run_id, task_id)
        assert f"skipped {task_id}: job {earlier[task_id]['tool_id']}" in log, log[-3000:]
    changed = _task_log(client, "lute_test", run_id, "WriteTester")
    assert "config changed since" in changed, changed[-3000:]
    after = _task_log(client, "lute_test", run_id, "ReadTester")
    assert "an earlier step of this run ran again since (WriteTester" in after, after[-3000:]


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
