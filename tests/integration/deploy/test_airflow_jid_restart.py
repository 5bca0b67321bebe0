"""A JID restart (SIGTERM, then a new daemon on the same store) fails no Airflow step.

Twelve parallel Sleeper steps of ``lute_bench_parallel`` defer at once on a
real Airflow 3; while their jobs run and the triggerer long-polls the JID, the
JID gets SIGTERM and a new one starts on the same store. The run succeeds,
no task instance fails or retries, and each step's job was submitted once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from lute.launch.processes import spawn
from tests.integration.airflow.conftest import airflow_stack  # noqa: F401 - fixture
from tests.integration.deploy.waiting import until
from tests.unit.airflow.support import run_conf, write_test_config

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]

DAG_ID = "lute_bench_parallel"
STEPS = 12


def _backend_job_keys(state_dir: Path, keys: set[str]) -> list[str]:
    """The control-document ids of the local backend's jobs that are among ``keys``."""
    found = []
    for spec in (state_dir / "jid" / "local" / "jobs").glob("*/spec.json"):
        key = json.loads(spec.read_text()).get("job_key")
        if key in keys:
            found.append(key)
    return found


def test_deferred_steps_survive_a_jid_restart(airflow_stack) -> None:  # noqa: F811 - fixture
    stack, client = airflow_stack.stack, airflow_stack.client
    config = write_test_config(airflow_stack.root / "cfg_restart", sleep_seconds=15)
    conf = run_conf(config, jid_defer_after=0)
    client.wait_for_dag(DAG_ID)
    client.unpause(DAG_ID)
    run_id = f"restart-{uuid.uuid4().hex[:10]}"
    client.trigger(DAG_ID, run_id, conf)
    root = conf["ARP_ROOT_JOB_ID"]

    def deferred_and_running():
        states = [ti["state"] for ti in client.task_instances(DAG_ID, run_id)]
        jobs = airflow_stack.jid_jobs(root)
        running = [j for j in jobs if j["status"] == "RUNNING"]
        return states.count("deferred") >= 5 and len(running) >= 5

    until("5 deferred steps with 5 running jobs", deferred_and_running)
    # A job whose submission is under way has no backend id yet: the
    # restarted JID settles it (checked below through the backend's own jobs).
    submitted = {j["_id"]: j["tool_id"] for j in airflow_stack.jid_jobs(root) if j["tool_id"]}

    (jid,) = [r for r in stack.running() if r.name == "jid"]
    os.kill(jid.pid, signal.SIGTERM)
    until("the JID to exit", lambda: not jid.is_alive(), timeout=60)
    spawn("jid", stack.jid_argv(), env=stack.jid_environment(), cwd=stack.state_dir,
          log_dir=stack.log_dir, pid_dir=stack.pid_dir)

    def healthy() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{stack.jid_url}/healthz", timeout=5).status_code == 200
        return False

    until("the restarted JID", healthy, timeout=60)

    deadline = time.monotonic() + 300
    seen: dict[str, list[str]] = {}
    while True:
        for ti in client.task_instances(DAG_ID, run_id):
            states = seen.setdefault(ti["task_id"], [])
            if ti["state"] and (not states or states[-1] != ti["state"]):
                states.append(ti["state"])
        state = client.dag_run(DAG_ID, run_id)["state"]
        if state in ("success", "failed"):
            break
        assert time.monotonic() < deadline, f"run still {state}: {seen}"
        time.sleep(0.5)
    assert state == "success", seen
    for task_id, states in seen.items():
        assert not {"failed", "up_for_retry"} & set(states), (task_id, states)
    jobs = airflow_stack.jid_jobs(root)
    assert len(jobs) == STEPS and {j["status"] for j in jobs} == {"DONE"}
    # the jobs submitted before the restart are the ones that ended, once each
    ended = {j["_id"]: j["tool_id"] for j in jobs}
    assert {k: ended[k] for k in submitted} == submitted
    # and the backend started one job per step, whatever the restart interrupted
    assert sorted(_backend_job_keys(stack.state_dir, set(ended))) == sorted(ended)
    log = (stack.log_dir / "jid.log").read_text()
    assert "Exception in ASGI application" not in log
    assert "timeout graceful shutdown exceeded" not in log
