"""docs/tutorial.md, done as a reader would: its own files, through the real stack.

Every code block the tutorial marks with ``<!-- tutorial-file: PATH -->`` is
written to PATH (the DAG file into the stack's DAG folder), the package is
built and installed into this environment while the stack's JID runs, and
the tutorial's commands run: ``--list``, ``--check``, the launch, the rerun
with ``--skip-done``. The package is uninstalled at the end.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lute.launch.processes import read_records
from lute.launch.stack import REPO_ROOT
from tests.integration.launch.support import airflow_get, jid_jobs, run_launcher

TUTORIAL = REPO_ROOT / "docs" / "tutorial.md"
MARKED_BLOCK = re.compile(r"<!-- tutorial-file: (\S+) -->\n```[a-z]*\n(.*?)\n```\n", re.DOTALL)
DAG_DIR = "workflows/airflow/"
BIN = Path(sys.executable).parent


def tutorial_files() -> dict[str, str]:
    """The tutorial's files: path -> text, exactly as its marked blocks give them."""
    return {path: text + "\n" for path, text in MARKED_BLOCK.findall(TUTORIAL.read_text())}


def _jid_pid(stack) -> int:
    return next(r.pid for r in read_records(stack.pid_dir) if r.name == "jid")


@pytest.fixture(scope="module")
def tutorial(stack, tmp_path_factory):
    """The tutorial's files written out, its package installed, its DAG parsed."""
    root = tmp_path_factory.mktemp("tutorial")
    jid_pid = _jid_pid(stack)
    for path, text in tutorial_files().items():
        target = (
            stack.dags_folder / path.removeprefix(DAG_DIR)
            if path.startswith(DAG_DIR) else root / path
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    pip = [str(BIN / "pip"), "--disable-pip-version-check", "-q"]
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", str(root / "my_analysis")],
        capture_output=True, text=True, timeout=180,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                airflow_get(stack, "/api/v2/dags/lute_integrate")
                break
            except httpx.HTTPStatusError:
                assert time.monotonic() < deadline, "Airflow did not parse the tutorial's DAG"
                time.sleep(1)
        yield root, jid_pid
    finally:
        subprocess.run([*pip, "uninstall", "-y", "my-analysis"], check=True, timeout=120)


def test_the_tutorial_marks_every_file_it_names(tutorial):
    files = tutorial_files()
    assert set(files) == {
        "my_analysis/pyproject.toml",
        "my_analysis/my_analysis/__init__.py",
        "my_analysis/my_analysis/params.py",
        "my_analysis/my_analysis/tasks.py",
        "my_analysis/my_analysis/managed.py",
        "config/integrate.yaml",
        "workflows/airflow/integrate.py",
    }
    for path, text in files.items():  # each block says where it goes, as the page promises
        assert text.startswith(f"# {path}\n"), path


def test_list_and_check_show_the_installed_package(tutorial):
    root, _ = tutorial
    listing = subprocess.run([str(BIN / "lute-run-task"), "--list"],
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    row = next(ln for ln in listing.stdout.splitlines() if " Integrator " in ln)
    assert "IntegrateFrames" in row and "my-analysis" in row
    check = subprocess.run(
        [str(BIN / "lute-run-task"), "--check", "-c", str(root / "config" / "integrate.yaml")],
        capture_output=True, text=True, timeout=60,
        env={"PATH": str(BIN), "EXPERIMENT": "tutorial", "RUN_NUM": "1"},
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK" in check.stdout


def test_the_workflow_runs_and_reruns_with_skip_done(tutorial, stack, env):
    root, jid_pid = tutorial
    config = str(root / "config" / "integrate.yaml")
    args = ("-c", config, "-w", "integrate", "-e", "tutorial", "-r", "1")
    first = run_launcher(env, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    # the step's log, streamed from the JID, holds the Task's own line
    integrated = [ln for ln in first.lines("[Integrator] ") if "integrated 5 frames" in ln]
    assert integrated, first.stdout
    table = root / "work_dirs" / "integrate" / "tutorial_r0001" / "integrated.csv"
    with table.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["frame"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert all(float(r["integrated_adu"]) > 0 for r in rows)
    # the package was installed beside the running JID: accepted without a restart
    assert _jid_pid(stack) == jid_pid

    # reuse needs the same code too (the job log's provenance): nothing here changes it
    again = run_launcher(env, *args, "--skip-done")
    assert again.returncode == 0, again.stdout + again.stderr
    root_job = re.search(r"ARP root job (\S+?)[,)]", again.stdout).group(1)
    assert jid_jobs(stack, arp_root_job_id=root_job) == []  # nothing submitted
    assert any("integrated 5 frames" in ln for ln in again.lines("[Integrator] ")), again.stdout
