"""A LUTE site's own files and flows, end to end: real Slurm, Airflow 3, JID and a real KDC.

* LUTE's eLog form of ``submit_launch_airflow.sh`` (the launcher's path first,
  ``--partition``/``--account``) under an ARP-like environment
  (``RUN_NUM=12_<iso time>``, no ``RUN``), with a ``!LUTE_DAG`` workflow
  using ``run_dependent`` and a config shaped like LUTE's (``{{ $RUN }}`` in
  its header, a Task section that cannot resolve and is not run);
* the Kerberos flow: ``kinit`` against the KDC, the launch copies the cache,
  each job proves with ``klist -s`` that it holds the forwarded ticket, the
  copies are gone afterwards; two concurrent launches with different caches;
* a DAG file written in LUTE's Airflow 2 style, fixed by the documented
  command, runs;
* LUTE's operator request sequence with ``-K`` against the JID on Slurm.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lute.launch.stack import REPO_ROOT, Stack
from tests.integration.launch.support import jid_jobs, launcher_env, stack_ports
from tests.integration.launch.test_launch_slurm import _require_slurm, _wait_slurm_job
from tests.support.kdc import Kdc

pytestmark = pytest.mark.slurm
SUBMIT = REPO_ROOT / "launch_scripts" / "submit_launch_airflow.sh"
LAUNCHER = REPO_ROOT / "launch_scripts" / "launch_airflow.py"
LUTE_INSTALL = "/sdf/group/lcls/ds/tools/lute/latest"

# LUTE's workflows/airflow/test.py shape, Airflow 2 style, with LUTE's import line
LUTE_STYLE_DAG = '''from datetime import datetime
import os
from airflow import DAG
from lute.operators.jidoperators import JIDSlurmOperator

dag_id: str = f"lute_{os.path.splitext(os.path.basename(__file__))[0]}"
dag: DAG = DAG(dag_id=dag_id, start_date=datetime(1970, 1, 1), schedule_interval=None,
               description="LUTE-style DAG")
tester: JIDSlurmOperator = JIDSlurmOperator(max_cores=2, task_id="Tester", dag=dag)
binary_tester: JIDSlurmOperator = JIDSlurmOperator(max_cores=2, task_id="BinaryTester", dag=dag)
tester >> binary_tester
'''

LUTE_DAG_FILE = """!LUTE_DAG
task_name: "Tester"
slurm_params: ""
run_dependent: true
next:
- task_name: "BinaryTester"
  slurm_params: ""
  run_dependent: false
  next: []
"""

PROVE_TICKET = """#!/bin/sh
echo "KRB5CCNAME=$KRB5CCNAME"
if klist -s; then echo "ticket valid"; else echo "no valid ticket"; exit 1; fi
klist | grep "Default principal"
"""


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    with Kdc(tmp_path_factory.mktemp("kdc")) as k:
        yield k


@pytest.fixture(scope="module")
def krb_root(tmp_path_factory) -> Path:
    """The JID's Kerberos cache root; launch copies go in its copies/."""
    return tmp_path_factory.mktemp("krb_root")


@pytest.fixture(scope="module")
def caches(kdc, tmp_path_factory) -> dict[str, str]:
    """A fresh TGT per user, in the user's own file cache (as after kinit)."""
    home = tmp_path_factory.mktemp("user_caches")
    return {user: kdc.kinit(user, kdc.add_principal(user), home / f"krb5cc_{user}")
            for user in ("alice", "bob")}


@pytest.fixture(scope="module")
def dags_folder(tmp_path_factory) -> Path:
    """The dynamic-workflow factory, and a LUTE-style DAG after the documented fix."""
    folder = tmp_path_factory.mktemp("dags")
    shutil.copy(REPO_ROOT / "workflows" / "airflow" / "dynamic.py", folder / "dynamic.py")
    path = folder / "lute_style.py"
    path.write_text(LUTE_STYLE_DAG)
    ruff = Path(sys.executable).with_name("ruff")
    fixed = subprocess.run([str(ruff), "check", "--isolated", "--select", "AIR301", "--fix",
                            str(path)], capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    return folder


@pytest.fixture(scope="module")
def stack(tmp_path_factory, defs_dir, dags_folder, krb_root):
    _require_slurm()
    airflow_port, jid_port = stack_ports()
    with Stack(
        tmp_path_factory.mktemp("lute_stack"), airflow_port=airflow_port, jid_port=jid_port,
        backend="slurm", dags_folder=dags_folder,
        extra_env={"LUTE_WORKFLOW_DEFS_DIR": str(defs_dir)},
        jid_env={"JID_KERBEROS_CACHE_ROOTS": json.dumps([str(krb_root)])},
        wait_for_dags=["lute_lute_style"],
    ) as s:
        yield s


@pytest.fixture
def lute_config(tmp_path: Path) -> Path:
    """A config shaped like LUTE's test.yaml: env references in the header, an unrun Task."""
    (tmp_path / "work").mkdir()
    prove = tmp_path / "prove_ticket.sh"
    prove.write_text(PROVE_TICKET)
    prove.chmod(0o755)
    path = tmp_path / "test.yaml"
    path.write_text(
        '%YAML 1.3\n---\ntitle: "LUTE Task Configuration"\nexperiment: "{{ $EXPERIMENT }}"\n'
        'run: "{{ $RUN }}"\ndate: "2023/10/25"\nlute_version: 0.1\ntask_timeout: 600\n'
        f'work_dir: "{tmp_path / "work"}"\n...\n---\n'
        'Test:\n  float_var: 0.01\n  str_var: "test"\n  throw_error: False\n'
        f'TestBinary:\n  executable: "{prove}"\n  long_format: false\n  show_all: false\n'
        'SubmitSMD:\n  directory: "{{ $SMD_OUTPUT_DIR }}/{{ run:04d }}"\n...\n'
    )
    return path


def _copies(krb_root: Path) -> list[Path]:
    copies = krb_root / "copies"
    return sorted(copies.iterdir()) if copies.is_dir() else []


def test_lute_elog_form_with_kerberos_on_slurm(stack, defs_dir, krb_root, caches, lute_config,
                                               tmp_path):
    workflow = tmp_path / "sfx_tagged.dag"
    workflow.write_text(LUTE_DAG_FILE)
    log_dir = tmp_path / "launch_logs"
    iso = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
    env = launcher_env(stack, defs_dir, LUTE_LAUNCH_LOG_DIR=str(log_dir),
                       Authorization=f"Bearer {stack.jid_token}", EXPERIMENT="mfxl1001021",
                       RUN_NUM=f"12_{iso}", ARP_JOB_ID="root-elog-" + tmp_path.name[-8:],
                       KRB5CCNAME=caches["alice"],
                       LUTE_KRB5_CACHE_DIR=str(krb_root / "copies"))
    env.pop("RUN", None)
    # the eLog definition of a LUTE site, word for word
    out = subprocess.run(
        [str(SUBMIT), f"{LUTE_INSTALL}/launch_scripts/launch_airflow.py", "-c", str(lute_config),
         "-W", str(workflow), "--partition=debug", "--account=lcls:mfxl1001021"],
        env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    job_id = re.search(r"Slurm job (\d+)", out.stdout).group(1)
    state = _wait_slurm_job(job_id, 300)
    log = (log_dir / f"lute_launch_{job_id}.out").read_text()
    assert state == "COMPLETED", log
    assert "ended: success" in log
    assert "SMD_OUTPUT_DIR" in log  # warned about, and nothing failed
    binary = "\n".join(ln for ln in log.splitlines() if ln.startswith("[BinaryTester] "))
    assert f"KRB5CCNAME=FILE:{krb_root / 'copies'}/krb5cc_lute_" in binary, log
    assert "ticket valid" in binary and "alice@LUTE.TEST" in binary, log
    jobs = jid_jobs(stack, arp_root_job_id=env["ARP_JOB_ID"])
    assert len(jobs) == 2
    for job in jobs:
        params = job["def"]["parameters"]
        assert "launch_airflow.py" not in params
        assert "--partition=debug --account=lcls:mfxl1001021" in params
        assert f"-K FILE:{krb_root / 'copies'}/krb5cc_lute_" in params
        assert job["status"] == "DONE"
    assert _copies(krb_root) == []  # removed when the run ended


def test_two_concurrent_launches_each_reach_their_own_job(stack, defs_dir, krb_root, caches,
                                                          lute_config):
    """The LUTE-style DAG (fixed by the documented command) runs, twice at once."""
    procs = {}
    for run, user in ((31, "alice"), (32, "bob")):
        env = launcher_env(stack, defs_dir, KRB5CCNAME=caches[user],
                           LUTE_KRB5_CACHE_DIR=str(krb_root / "copies"))
        procs[user] = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "-c", str(lute_config), "-w", "lute_style",
             "-e", "mfxl1001021", "-r", str(run), "--partition=debug"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    for user, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout + stderr
        other = "bob" if user == "alice" else "alice"
        binary = "\n".join(ln for ln in stdout.splitlines() if ln.startswith("[BinaryTester] "))
        assert "ticket valid" in binary and f"{user}@LUTE.TEST" in binary, stdout
        assert f"{other}@LUTE.TEST" not in binary
    assert _copies(krb_root) == []


def test_lute_operator_sequence_with_k_on_slurm(stack, krb_root, caches, lute_config):
    """start_job with -K (200), job_statuses until it ends, job_log_file: as LUTE's operator."""
    direct = krb_root / "direct"
    direct.mkdir(exist_ok=True, mode=0o700)
    cache = direct / "krb5cc_forwarded"
    shutil.copy(caches["bob"].removeprefix("FILE:"), cache)
    cache.chmod(0o600)
    base = f"{stack.jid_url}/jid/ws"
    headers = {"Authorization": f"Bearer {stack.jid_token}"}
    doc = {
        "_id": f"lute-k-{time.time_ns()}", "arp_root_job_id": "root-k", "experiment": "mfx",
        "run_num": "14_2026-01-21T08:01:17.123456", "user": "alice", "status": "",
        "tool_id": "", "def_id": "d1",
        "def": {"_id": "d2", "name": "BinaryTester", "trigger": "MANUAL", "location": "S3DF",
                "executable": f"{REPO_ROOT}/launch_scripts/submit_slurm.sh",
                "parameters": f"--taskname BinaryTester --config {lute_config} "
                              f"-K FILE:{cache} --partition=debug -n 1",
                "run_as_user": "alice"},
    }
    with httpx.Client(timeout=60, headers=headers) as client:
        r = client.post(f"{base}/mfx/start_job", json=doc)
        assert r.status_code == 200, r.text
        jobs = [r.json()["value"]]
        deadline = time.monotonic() + 240
        while jobs[0]["status"] in ("RUNNING", "SUBMITTED"):
            assert time.monotonic() < deadline, jobs
            time.sleep(1)
            jobs = client.post(f"{base}/job_statuses", json=jobs).json()["value"]
        assert jobs[0]["status"] == "DONE", jobs
        log = client.post(f"{base}/mfx/job_log_file", json=jobs[0]).json()["value"]
    assert f"KRB5CCNAME=FILE:{cache}" in log and "ticket valid" in log, log
    assert "bob@LUTE.TEST" in log
