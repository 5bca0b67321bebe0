"""The launcher with the JID on the real single-node Slurm, and submit_launch_airflow.sh."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from jid_service.slurm_options import DEFAULT_SLURM_OPTIONS
from lute.launch.stack import REPO_ROOT, Stack
from tests.integration.launch.support import (
    jid_jobs,
    launcher_env,
    run_launcher,
    stack_ports,
    write_test_config,
)
from tests.integration.slurm.test_slurm_costs import HOLD_MIB, HOLD_SECONDS, memory_holder

pytestmark = pytest.mark.slurm
SUBMIT = REPO_ROOT / "launch_scripts" / "submit_launch_airflow.sh"


def _require_slurm() -> None:
    # a missing cluster is a failure, not a skip: CI starts it (.ci/run)
    assert shutil.which("sbatch"), "sbatch not found: run launch_scripts/dev/start_slurm.sh"
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout.strip(), (
        f"Slurm is not answering (sinfo rc {out.returncode}: {out.stderr.strip()}); "
        "run launch_scripts/dev/start_slurm.sh"
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory, defs_dir):
    _require_slurm()
    airflow_port, jid_port = stack_ports()
    with Stack(
        tmp_path_factory.mktemp("slurm_stack"), airflow_port=airflow_port, jid_port=jid_port,
        backend="slurm",
        # the site lets users sample memory every second (--acctg-freq=1): this
        # cluster's JobAcctGatherFrequency (30 s) never samples a short job
        extra_env={"LUTE_WORKFLOW_DEFS_DIR": str(defs_dir),
                   "JID_SLURM_ALLOWED_OPTIONS": json.dumps([*DEFAULT_SLURM_OPTIONS,
                                                            "acctg-freq"])},
        wait_for_dags=["lute_test"],
    ) as s:
        yield s


def test_test_workflow_on_slurm(stack, defs_dir, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    env = launcher_env(stack, defs_dir)
    res = run_launcher(env, "-c", str(cfg), "-w", "test", "-e", "slurmtest", "-r", "21",
                       "--partition=debug", timeout=280)
    assert res.returncode == 0, res.stdout + res.stderr
    for task in ("Tester", "BinaryTester", "SocketTester", "WriteTester", "ReadTester"):
        assert any("COMPLETED" in ln for ln in res.lines(f"[{task}] ")), (task, res.stdout)
    # the job ids in the summary are Slurm's (numeric)
    table = res.stdout[res.stdout.index("┏"):]
    row = next(ln for ln in table.splitlines() if " Tester " in ln)
    assert re.search(r"│ \d+ +│ DONE", row), row
    # every step's queue wait and run time come from sacct
    assert "queue wait" in table and "peak mem" in table
    assert re.search(r"│ DONE +│ [0-9][^│]* │ [0-9][^│]* │", row), row


def test_a_step_s_cost_from_slurm_accounting(stack, defs_dir, tmp_path):
    holder = memory_holder(tmp_path / "hold_memory.py")
    cfg = write_test_config(tmp_path / "cfg")
    cfg.write_text(cfg.read_text().replace('executable: "/bin/ls"', f'executable: "{holder}"'))
    defn = tmp_path / "cost.yaml"
    defn.write_text("task_name: BinaryTester\nnext: []\n")
    env = launcher_env(stack, defs_dir)
    res = run_launcher(env, "-c", str(cfg), "-W", str(defn), "-e", "costtest", "-r", "23",
                       "--partition=debug", "--acctg-freq=1", timeout=280)
    assert res.returncode == 0, res.stdout + res.stderr
    assert any(f"held {HOLD_MIB} MiB" in ln for ln in res.lines("[BinaryTester] ")), res.stdout
    (job,) = jid_jobs(stack, experiment="costtest")  # the only run of this experiment
    cost = job["cost"]
    assert cost["exit_code"] == 0 and cost["cpus"] >= 1
    assert cost["queue_wait_seconds"] >= 0 and cost["run_seconds"] >= HOLD_SECONDS
    assert cost["max_rss_bytes"] >= HOLD_MIB << 20, cost  # MaxRSS of the batch step
    assert 0 < cost["cpu_efficiency"] <= 1.5 and cost["cpu_seconds"] > 0
    table = res.stdout[res.stdout.index("┏"):]
    row = next(ln for ln in table.splitlines() if " BinaryTester " in ln)
    assert re.search(r"│ [0-9.]+ MiB +│ [0-9]+% +│", row), row


def _wait_slurm_job(job_id: str, timeout: float) -> str:
    end = time.monotonic() + timeout
    state = ""
    while time.monotonic() < end:
        out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
        m = re.search(r"JobState=(\S+)", out.stdout)
        state = m.group(1) if m else state
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"):
            return state
        time.sleep(1)
    return state


def test_submit_launch_airflow_returns_at_once(stack, defs_dir, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    defn = tmp_path / "wf.yaml"
    defn.write_text("task_name: Tester\nnext: []\n")
    log_dir = tmp_path / "launch_logs"
    env = launcher_env(stack, defs_dir, LUTE_LAUNCH_LOG_DIR=str(log_dir),
                       Authorization=f"Bearer {stack.jid_token}", EXPERIMENT="subtest",
                       RUN_NUM="22", ARP_JOB_ID="root-submit-" + tmp_path.name[-8:])
    t0 = time.monotonic()
    out = subprocess.run(
        [str(SUBMIT), "-c", str(cfg), "-W", str(defn), "--partition=debug", "--ntasks=1"],
        env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert took < 30  # the eLog gives it 30 s
    job_id = re.search(r"Slurm job (\d+)", out.stdout).group(1)
    state = _wait_slurm_job(job_id, 240)
    log = (log_dir / f"lute_launch_{job_id}.out").read_text()
    assert state == "COMPLETED", log
    assert "ended: success" in log
    assert any("COMPLETED" in ln for ln in log.splitlines() if ln.startswith("[Tester] "))
    # --partition went to the launcher's job and on to the managed task's job
    jobs = jid_jobs(stack, arp_root_job_id=env["ARP_JOB_ID"])
    assert len(jobs) == 1 and "--partition=debug" in jobs[0]["def"]["parameters"]
