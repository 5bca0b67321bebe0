"""launch_airflow.py against a real dev stack (Airflow 3 + JID, local backend)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid

import httpx
import jwt
import pytest

from lute.launch.stack import REPO_ROOT, Stack
from tests.integration.launch.support import (
    LAUNCHER,
    airflow_get,
    airflow_request,
    jid_jobs,
    launcher_env,
    run_launcher,
    stack_ports,
    unused_port,
    write_test_config,
)

TEST_TASKS = ("Tester", "BinaryTester", "SocketTester", "WriteTester", "ReadTester")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, defs_dir):
    """One real stack for the whole module (start-up costs ~15 s)."""
    airflow_port, jid_port = stack_ports()
    with Stack(
        tmp_path_factory.mktemp("stack"), airflow_port=airflow_port, jid_port=jid_port,
        extra_env={"LUTE_WORKFLOW_DEFS_DIR": str(defs_dir)},
        wait_for_dags=["lute_test", "lute_test_failure"],
    ) as s:
        yield s


@pytest.fixture
def env(stack, defs_dir):
    return launcher_env(stack, defs_dir)


def _state_order(result, task):
    """Index of the line announcing ``task``'s final success."""
    for i, line in enumerate(result.stdout.splitlines()):
        if re.search(rf"launch: {task}: .*success$", line):
            return i
    raise AssertionError(f"no success line for {task}:\n{result.stdout}")


def test_test_workflow_succeeds_with_every_log(stack, env, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    res = run_launcher(env, "-c", str(cfg), "-w", "test", "-e", "itest", "-r", "11")
    assert res.returncode == 0, res.stdout + res.stderr
    for task in TEST_TASKS:
        # each task's own log, streamed from the JID, with its name on each line
        assert any("COMPLETED" in ln for ln in res.lines(f"[{task}] ")), (task, res.stdout)
    # states in the DAG's order: Tester first, the chain in sequence
    order = [_state_order(res, t) for t in ("Tester", "SocketTester", "WriteTester", "ReadTester")]
    assert order == sorted(order)
    assert _state_order(res, "Tester") < _state_order(res, "BinaryTester")
    # each state change is printed once
    for task in TEST_TASKS:
        # ("X: running -> success", or "X: success" when first seen already done)
        assert len([ln for ln in res.stdout.splitlines()
                    if re.search(rf"launch: {task}: (.* -> )?success$", ln)]) == 1
    # the summary names every task with its job id
    table = res.stdout[res.stdout.index("┏"):]
    for task in TEST_TASKS:
        row = next(ln for ln in table.splitlines() if f" {task} " in ln)
        assert "success" in row and "DONE" in row
    assert "ended: success" in res.stdout
    # the run's conf, which Airflow shows to everyone who sees the run, holds
    # a token for this run only, and the steps worked with it
    run_id = re.search(r"triggered lute_test run (\S+)", res.stdout).group(1)
    conf = airflow_get(stack, f"/api/v2/dags/lute_test/dagRuns/{run_id}")["conf"]
    scheme, token = conf["Authorization"].split()
    assert scheme == "Bearer" and token != stack.jid_token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["run"] == conf["ARP_ROOT_JOB_ID"] and claims["experiments"] == ["itest"]
    assert claims["admin"] is False


def test_failure_workflow_exits_1_with_the_failing_log(stack, env, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    res = run_launcher(env, "-c", str(cfg), "-w", "test_failure", "-e", "itest", "-r", "12")
    assert res.returncode == 1, res.stdout + res.stderr
    failing = res.lines("[FailingTester] ")
    assert failing, res.stdout
    assert any("FAILED" in ln or "rror" in ln for ln in failing), failing
    assert re.search(r"launch: ReadTester: .*upstream_failed", res.stdout)
    assert "ended: failed" in res.stdout


def test_dynamic_workflow(stack, env, tmp_path, defs_dir):
    cfg = write_test_config(tmp_path / "cfg")
    # a fresh tree each run so the DAG is new to Airflow and must be parsed
    mem = 100 + uuid.uuid4().int % 10000
    defn = tmp_path / "wf.yaml"
    defn.write_text(
        "task_name: Tester\n"
        f"slurm_params: '--mem={mem}M'\n"
        "next:\n  - task_name: BinaryTester\n    next: []\n"
    )
    res = run_launcher(env, "-c", str(cfg), "-W", str(defn), "-e", "itest", "-r", "13")
    assert res.returncode == 0, res.stdout + res.stderr
    stored = list(defs_dir.glob("*.yaml"))
    assert stored, "the definition was not stored"
    # the DAG id names the workflow file, then a content hash
    assert re.search(r"triggered lute_dyn_wf_[0-9a-f]{8} ", res.stdout)
    assert any("COMPLETED" in ln for ln in res.lines("[Tester] "))
    assert any("COMPLETED" in ln for ln in res.lines("[BinaryTester] "))


def test_dry_run_submits_nothing(stack, env, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    root = str(uuid.uuid4())
    arp = dict(env, Authorization=f"Bearer {stack.jid_token}", EXPERIMENT="drytest",
               RUN_NUM="14", ARP_JOB_ID=root)
    # a stored jid_default connection with the token: the conf needs none
    jid = httpx.URL(stack.jid_url)
    airflow_request(stack, "POST", "/api/v2/connections", {
        "connection_id": "jid_default", "conn_type": "jid", "host": jid.host, "port": jid.port,
        "schema": "http", "password": stack.jid_token})
    try:
        res = run_launcher(arp, "-c", str(cfg), "-w", "test", "--dry-run")
    finally:
        airflow_request(stack, "DELETE", "/api/v2/connections/jid_default")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "none in the run's conf" in res.stdout
    run_id = re.search(r"triggered lute_test run (\S+)", res.stdout).group(1)
    conf = airflow_get(stack, f"/api/v2/dags/lute_test/dagRuns/{run_id}")["conf"]
    assert "Authorization" not in conf
    assert "dry run" in res.stdout
    assert jid_jobs(stack, arp_root_job_id=root) == []
    assert jid_jobs(stack, experiment="drytest") == []
    # the rendered submissions are shown in place of logs
    assert res.lines("[Tester] ")


def test_bad_config_exits_2_and_triggers_nothing(stack, env, tmp_path):
    before = airflow_get(stack, "/api/v2/dags/lute_test/dagRuns")["total_entries"]
    missing = tmp_path / "missing_section.yaml"
    missing.write_text(
        (REPO_ROOT / "config" / "test.yaml").read_text().replace("TestBinary:", "Unused:")
    )
    (tmp_path.parent / "work_dirs" / "test").mkdir(parents=True, exist_ok=True)
    res = run_launcher(env, "-c", str(missing), "-w", "test", "-e", "itest", "-r", "15")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "TestBinary (for BinaryTester)" in res.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("---\ntitle: [unclosed\n")
    res = run_launcher(env, "-c", str(broken), "-w", "test", "-e", "itest", "-r", "15")
    assert res.returncode == 2 and "broken.yaml" in res.stderr
    res = run_launcher(env, "-c", str(missing), "-w", "no_such_workflow", "-e", "i", "-r", "1")
    assert res.returncode == 2 and "lute_no_such_workflow" in res.stderr
    res = run_launcher(env, "-w", "test")  # no -c
    assert res.returncode == 2
    assert airflow_get(stack, "/api/v2/dags/lute_test/dagRuns")["total_entries"] == before
    assert "Traceback" not in res.stderr


def test_unreachable_or_refusing_exits_3_fast(stack, env, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    cases = {
        "airflow down": ({}, ["--airflow-url", f"http://127.0.0.1:{unused_port()}"]),
        "jid down": ({"LUTE_JID_URL": f"http://127.0.0.1:{unused_port()}"}, []),
        "bad password": ({"LUTE_AIRFLOW_PASSWORD": "wrong"}, []),
        "bad jid token": ({"LUTE_JID_TOKEN": "not-a-token"}, []),
    }
    for name, (extra, args) in cases.items():
        t0 = time.monotonic()
        res = run_launcher(dict(env, **extra), "-c", str(cfg), "-w", "test", "-e", "i", "-r", "1",
                           *args, timeout=60)
        took = time.monotonic() - t0
        assert res.returncode == 3, (name, res.stdout, res.stderr)
        assert took < 15, (name, took)
        assert "Traceback" not in res.stderr, name
        assert len(res.stderr.strip().splitlines()) == 1, (name, res.stderr)
        assert "wrong" not in res.stderr


def test_sigterm_cancels_the_running_job(stack, env, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    cfg.write_text(cfg.read_text().replace("seconds: 2", "seconds: 300"))
    defn = tmp_path / "sleep.yaml"
    defn.write_text("task_name: Sleeper\nnext: []\n")
    root = str(uuid.uuid4())
    arp = dict(env, Authorization=f"Bearer {stack.jid_token}", EXPERIMENT="sigtest",
               RUN_NUM="16", ARP_JOB_ID=root)
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCHER), "-c", str(cfg), "-W", str(defn)],
        env=arp, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("[Sleeper] ") or time.monotonic() > deadline:
                break
        assert any(ln.startswith("[Sleeper] ") for ln in lines), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    print(out)  # shown with -s: who cancelled the job, the operator or the launcher
    assert proc.returncode == 1, out
    assert "marked run" in out
    jobs = jid_jobs(stack, arp_root_job_id=root)
    assert jobs and all(j["status"] == "EXITED" for j in jobs), jobs
