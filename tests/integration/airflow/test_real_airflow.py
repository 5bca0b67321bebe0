"""The DAGs on a real Airflow 3 (api-server, scheduler, dag-processor, triggerer on SQLite).

Runs go through the REST API v2 exactly as the launcher drives them; the JID
is a real process with the local backend.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.unit.airflow.support import run_conf

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]

TERMINAL = ("success", "failed")


def _trigger(client, dag_id: str, conf: dict) -> str:
    client.wait_for_dag(dag_id)
    client.unpause(dag_id)
    run_id = f"it-{uuid.uuid4().hex[:10]}"
    client.trigger(dag_id, run_id, conf)
    return run_id


def _follow(client, dag_id: str, run_id: str, timeout: float = 300.0) -> tuple[str, dict]:
    """Poll the run until it ends; every state each task instance was seen in."""
    seen: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for ti in client.task_instances(dag_id, run_id):
            states = seen.setdefault(ti["task_id"], [])
            if ti["state"] and (not states or states[-1] != ti["state"]):
                states.append(ti["state"])
        state = client.dag_run(dag_id, run_id)["state"]
        if state in TERMINAL:
            for ti in client.task_instances(dag_id, run_id):
                states = seen.setdefault(ti["task_id"], [])
                if ti["state"] and (not states or states[-1] != ti["state"]):
                    states.append(ti["state"])
            return state, seen
        assert time.monotonic() < deadline, f"run {run_id} still {state}: {seen}"
        time.sleep(0.3)


def _task_log(client, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    path = (
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    )
    return json.dumps(client.request("GET", path, params={"full_content": True}))


def _task_dir(airflow_stack, dag_id: str, run_id: str, task_id: str):
    return (
        airflow_stack.stack.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        / f"task_id={task_id}"
    )


def test_lute_test_succeeds_with_every_step_deferred(airflow_stack) -> None:
    client = airflow_stack.client
    # No inline wait: every step defers at once, however short its job.
    conf = run_conf(airflow_stack.config, jid_defer_after=0)
    run_id = _trigger(client, "lute_test", conf)
    state, seen = _follow(client, "lute_test", run_id)
    assert state == "success", seen
    assert set(seen) == {"Tester", "BinaryTester", "SocketTester", "WriteTester", "ReadTester"}
    jobs = {j["def"]["name"]: j for j in airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])}
    for task_id, states in seen.items():
        assert states[-1] == "success", (task_id, states)
        # The worker handed the wait to the triggerer.
        log = _task_log(client, "lute_test", run_id, task_id)
        assert "Pausing task as DEFERRED" in log, (task_id, log[-2000:])
        # The XCom holds the job's log exactly as the JID serves it.
        assert client.xcom("lute_test", run_id, task_id, "log") == _jid_log(
            airflow_stack, jobs[task_id]
        )
        # The trigger ended the task (log and job id pushed with its event):
        # no worker resumed it to fetch the log.
        task_dir = _task_dir(airflow_stack, "lute_test", run_id, task_id)
        worker_log = (task_dir / "attempt=1.log").read_text()
        trigger_log = "".join(p.read_text() for p in task_dir.glob("attempt=1.log.trigger.*"))
        assert "stored in XCom" in trigger_log, (task_id, trigger_log[-2000:])
        assert "ended DONE" not in worker_log, (task_id, worker_log[-2000:])
        assert client.xcom("lute_test", run_id, task_id, "return_value") == (
            jobs[task_id]["tool_id"]
        )
    # Each step was submitted once (one JID job per task) and ended DONE.
    jobs = airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])
    assert sorted(j["def"]["name"] for j in jobs) == sorted(seen)
    assert {j["status"] for j in jobs} == {"DONE"}


def test_short_steps_finish_in_the_worker_without_deferring(airflow_stack) -> None:
    client = airflow_stack.client
    # An inline wait longer than any of lute_test's jobs: none defers.
    conf = run_conf(airflow_stack.config, jid_defer_after=60)
    run_id = _trigger(client, "lute_test", conf)
    state, seen = _follow(client, "lute_test", run_id)
    assert state == "success", seen
    for task_id, states in seen.items():
        assert "deferred" not in states, (task_id, states)
        log = _task_log(client, "lute_test", run_id, task_id)
        assert "Pausing task as DEFERRED" not in log, (task_id, log[-2000:])
        assert "ended DONE" in log, (task_id, log[-2000:])
        assert client.xcom("lute_test", run_id, task_id, "log")
    jobs = airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])
    assert sorted(j["def"]["name"] for j in jobs) == sorted(seen)
    assert {j["status"] for j in jobs} == {"DONE"}


def test_lute_test_failure_fails_with_the_failing_log_in_xcom(airflow_stack) -> None:
    client = airflow_stack.client
    # Deferring at once: a failed job resumes the worker, which raises with the log tail.
    conf = run_conf(airflow_stack.config, jid_defer_after=0)
    run_id = _trigger(client, "lute_test_failure", conf)
    state, seen = _follow(client, "lute_test_failure", run_id)
    assert state == "failed"
    final = {task: states[-1] for task, states in seen.items()}
    assert final == {
        "Tester": "success",
        "FailingTester": "failed",
        "ReadTester": "upstream_failed",
    }
    failing_log = client.xcom("lute_test_failure", run_id, "FailingTester", "log")
    jobs = {j["def"]["name"]: j for j in airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])}
    assert jobs["FailingTester"]["status"] == "FAILED"
    assert "ReadTester" not in jobs
    assert failing_log.strip()
    # The XCom holds the job's log as the JID serves it.
    assert failing_log.rstrip().splitlines()[-1] in _jid_log(airflow_stack, jobs["FailingTester"])
    # The step deferred, then the worker resumed it and failed it with the log's last lines.
    log = _task_log(client, "lute_test_failure", run_id, "FailingTester")
    assert "Pausing task as DEFERRED" in log
    assert "ended FAILED" in log and "Last lines of its log" in log, log[-3000:]


def _jid_log(airflow_stack, job: dict) -> str:
    import httpx

    response = httpx.post(
        f"{airflow_stack.stack.jid_url}/jid/ws/{job['experiment']}/job_log_file",
        json=job,
        headers={"Authorization": f"Bearer {airflow_stack.stack.jid_token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["value"]


def _wait_job(airflow_stack, root_id: str, status: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    jobs: list[dict] = []
    while time.monotonic() < deadline:
        jobs = airflow_stack.jid_jobs(root_id)
        if jobs and jobs[0]["status"] == status:
            return jobs[0]
        time.sleep(0.3)
    raise AssertionError(f"no job reached {status} in {timeout} s: {jobs}")


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "blocking"])
def test_marking_the_run_failed_cancels_its_running_job(airflow_stack, deferrable) -> None:
    client = airflow_stack.client
    conf = run_conf(airflow_stack.long_config, jid_deferrable=deferrable)
    run_id = _trigger(client, "lute_bench_chain", conf)
    _wait_job(airflow_stack, conf["ARP_ROOT_JOB_ID"], "RUNNING", timeout=120)
    expected = "deferred" if deferrable else "running"
    task_logs = (
        airflow_stack.stack.airflow_home / "logs" / "dag_id=lute_bench_chain"
        / f"run_id={run_id}" / "task_id=step1.Sleeper"
    )
    deadline = time.monotonic() + 60
    while True:
        states = {ti["task_id"]: ti["state"] for ti in client.task_instances(
            "lute_bench_chain", run_id)}
        # A deferred step is only cancellable once the triggerer runs its trigger
        # (its trigger log file says "starting").
        started = not deferrable or any(
            "starting" in path.read_text() for path in task_logs.glob("attempt=1.log.trigger.*")
        )
        if states.get("step1.Sleeper") == expected and started:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.3)

    client.mark_run_failed("lute_bench_chain", run_id)

    job = _wait_job(airflow_stack, conf["ARP_ROOT_JOB_ID"], "EXITED", timeout=90)
    assert job["def"]["name"] == "Sleeper"
    states = {ti["task_id"]: ti["state"] for ti in client.task_instances(
        "lute_bench_chain", run_id)}
    assert states["step1.Sleeper"] == "failed", states
    assert {states["step2.Sleeper"], states["step3.Sleeper"]} <= {"skipped", None}, states
    # Airflow's scheduler, evaluating the run while the API marks it failed,
    # may write "success" over it (seen on SQLite: the later steps already
    # skipped, the cancelled one not yet failed in its view); never "running"
    assert client.dag_run("lute_bench_chain", run_id)["state"] in ("failed", "success")
    # Nothing after the cancelled step was submitted.
    assert len(airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])) == 1


def test_two_dynamic_workflows_launched_at_once_both_run(airflow_stack) -> None:
    from lute.airflow.workflow_defn import parse_definition, store_definition

    client = airflow_stack.client
    first = parse_definition("task_name: Tester\nnext: [{task_name: BinaryTester}]")
    second = parse_definition(
        "task_name: Tester\nslurm_params: '--ntasks=1'\n"
        "next: [{task_name: WriteTester, next: [{task_name: ReadTester}]}]"
    )
    assert first.dag_id != second.dag_id
    defs_dir = airflow_stack.root / "defs"
    store_definition(first, defs_dir)
    store_definition(second, defs_dir)
    confs = {defn.dag_id: run_conf(airflow_stack.config) for defn in (first, second)}
    runs = {dag_id: _trigger(client, dag_id, conf) for dag_id, conf in confs.items()}
    expected = {
        first.dag_id: {"Tester", "BinaryTester"},
        second.dag_id: {"Tester", "WriteTester", "ReadTester"},
    }
    for dag_id, run_id in runs.items():
        state, seen = _follow(client, dag_id, run_id)
        assert state == "success", (dag_id, seen)
        assert set(seen) == expected[dag_id]
        jobs = airflow_stack.jid_jobs(confs[dag_id]["ARP_ROOT_JOB_ID"])
        assert sorted(j["def"]["name"] for j in jobs) == sorted(expected[dag_id])
        assert {j["status"] for j in jobs} == {"DONE"}
    second_tester = next(
        j for j in airflow_stack.jid_jobs(confs[second.dag_id]["ARP_ROOT_JOB_ID"])
        if j["def"]["name"] == "Tester"
    )
    # The step's own slurm_params replaced the run's Slurm arguments.
    assert second_tester["def"]["parameters"].endswith("--ntasks=1")


def test_steps_started_in_the_triggerer_submit_there(airflow_stack) -> None:
    client = airflow_stack.client
    dag_id = "lute_bench_parallel_triggerer"
    conf = run_conf(airflow_stack.config)
    run_id = _trigger(client, dag_id, conf)
    state, seen = _follow(client, dag_id, run_id)
    assert state == "success", seen
    assert sorted(seen) == [f"s{i:02d}.Sleeper" for i in range(1, 13)]
    for task_id in seen:
        task_dir = _task_dir(airflow_stack, dag_id, run_id, task_id)
        trigger_log = "".join(p.read_text() for p in task_dir.glob("attempt=1.log.trigger.*"))
        # The trigger submitted the job and ended the task: no worker ran at all.
        assert "submitted Sleeper as job" in trigger_log
        assert "stored in XCom" in trigger_log
        assert not (task_dir / "attempt=1.log").exists(), task_id
        assert client.xcom(dag_id, run_id, task_id, "log")
    jobs = airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])
    assert len(jobs) == 12
    assert {j["status"] for j in jobs} == {"DONE"}
    # Each try's _id is the one the worker path would have used.
    from lute.airflow.control_document import step_uuid

    assert {j["_id"] for j in jobs} == {step_uuid(dag_id, run_id, t, 1) for t in seen}

    dry = run_conf(airflow_stack.config, dryrun=True)
    dry_run_id = _trigger(client, dag_id, dry)
    state, seen = _follow(client, dag_id, dry_run_id)
    assert state == "success"
    assert "dry run of Sleeper" in client.xcom(dag_id, dry_run_id, "s01.Sleeper", "log")
    assert airflow_stack.jid_jobs(dry["ARP_ROOT_JOB_ID"]) == []


def test_steps_waiting_for_a_worker_slot_make_a_running_step_defer_at_once(airflow_stack) -> None:
    client = airflow_stack.client
    dag_id = "lute_bench_parallel"
    # 12 steps on 4 worker slots, the operator's own inline wait (no conf key)
    conf = run_conf(airflow_stack.config, jid_deferrable=True)
    run_id = _trigger(client, dag_id, conf)
    state, seen = _follow(client, dag_id, run_id)
    assert state == "success", seen
    at_once = []
    for task_id in seen:
        task_dir = _task_dir(airflow_stack, dag_id, run_id, task_id)
        worker_log = (task_dir / "attempt=1.log").read_text()
        assert "Pausing task as DEFERRED" in worker_log or "ended DONE" in worker_log, task_id
        if "wait for a worker slot: deferring at once" in worker_log:
            at_once.append(task_id)
    # the first wave started while eight others were queued behind it
    assert at_once, seen
    jobs = airflow_stack.jid_jobs(conf["ARP_ROOT_JOB_ID"])
    assert len(jobs) == 12
    assert {j["status"] for j in jobs} == {"DONE"}


def test_definitions_handed_over_through_airflow_variables(airflow_stack, tmp_path) -> None:
    """``defs_store: airflow``: no shared path; two launches at once, then one again."""
    from concurrent.futures import ThreadPoolExecutor

    from lute.airflow.workflow_defn import VARIABLE_PREFIX, load_definition, variable_key
    from tests.integration.launch.support import launcher_env, run_launcher

    stack, client = airflow_stack.stack, airflow_stack.client
    # the launcher's own defs dir, which no Airflow process reads
    launcher_defs = tmp_path / "launcher_defs"
    env = launcher_env(stack, launcher_defs, LUTE_DEFS_STORE="airflow")
    files = {}
    for name, text in {
        "alpha": "task_name: Tester\nnext: [{task_name: BinaryTester}]\n",
        "beta": "task_name: Tester\nslurm_params: '--ntasks=1'\nnext: []\n",
    }.items():
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text)
    defs = {name: load_definition(path) for name, path in files.items()}

    def launch(path, *extra: str):
        return run_launcher(env, "-c", str(airflow_stack.config), "-W", str(path),
                            "-e", "xpptut15", "-r", "12", *extra)

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(files, pool.map(launch, files.values()), strict=True))
    for name, res in results.items():
        assert res.returncode == 0, res.stdout + res.stderr
        key = variable_key(defs[name])
        assert f"stored workflow definition Airflow Variable {key} -> DAG " \
               f"{defs[name].dag_id}" in res.stdout, res.stdout
    assert not launcher_defs.exists() or not list(launcher_defs.iterdir())

    def stored() -> dict[str, str]:
        body = client.request("GET", "/api/v2/variables",
                              params={"variable_key_pattern": VARIABLE_PREFIX, "limit": 100})
        return {v["key"]: v["value"] for v in body["variables"]}

    assert set(stored()) == {variable_key(d) for d in defs.values()}
    # the same definition again: the same Variable, the same DAG
    again = launch(files["alpha"], "--dry-run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Airflow Variable {variable_key(defs['alpha'])} (already there)" in again.stdout
    assert set(stored()) == {variable_key(d) for d in defs.values()}
    assert sorted(client.dag_ids("lute_dyn_alpha%")) == [defs["alpha"].dag_id]
