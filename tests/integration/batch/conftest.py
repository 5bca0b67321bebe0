"""Real-Slurm fixtures for the batch-node integration tests.

A missing or broken cluster fails these tests with a clear message; they are
never skipped (``.ci/run`` starts the cluster).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SUBMIT = REPO / "launch_scripts" / "submit_slurm.sh"
FINAL_STATES = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}


@pytest.fixture(scope="session")
def slurm() -> None:
    """Fail (not skip) unless sbatch/scontrol exist and the cluster answers."""
    missing = [
        tool for tool in ("sbatch", "scontrol", "sinfo", "scancel") if not shutil.which(tool)
    ]
    if missing:
        pytest.fail(
            f"Slurm client tools missing ({', '.join(missing)}): run "
            "launch_scripts/dev/start_slurm.sh (as .ci/run does)",
            pytrace=False,
        )
    result = subprocess.run(
        ["sinfo", "-h", "-o", "%P %a %T"], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(
            f"Slurm is not answering ({result.stderr.strip()}): run "
            "launch_scripts/dev/start_slurm.sh",
            pytrace=False,
        )


def write_config(folder: Path, tasks: dict, task_timeout: int = 120) -> Path:
    """A config in ``folder`` with its work dir ``folder/work`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "work").mkdir(exist_ok=True)
    header = {"title": "slurm integration", "task_timeout": task_timeout, "work_dir": "work"}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump_all([header, tasks], explicit_start=True))
    return path


def submit(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run submit_slurm.sh; returns the job id (the only thing on stdout)."""
    result = subprocess.run(
        [str(SUBMIT), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+\n", result.stdout), repr(result.stdout)
    return result.stdout.strip()


def job_state(job_id: str) -> tuple[str, str]:
    """``(JobState, ExitCode)`` from ``scontrol show job``."""
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30
    ).stdout
    state = re.search(r"JobState=(\S+)", out)
    code = re.search(r"ExitCode=(\S+)", out)
    return (state.group(1) if state else "UNKNOWN", code.group(1) if code else "")


def wait_for_job(job_id: str, timeout: float = 240) -> tuple[str, str]:
    """Poll (with backoff) until the job reaches a final state, or fail at the timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        state, code = job_state(job_id)
        if state in FINAL_STATES:
            return state, code
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    pytest.fail(f"job {job_id} did not finish within {timeout} s (last state {state})")


def log_of(log_dir: Path, job_id: str) -> Path:
    """The job's log file (the name ends with ``_JOBID.out``)."""
    matches = list(log_dir.glob(f"*_{job_id}.out"))
    assert len(matches) == 1, (job_id, list(log_dir.iterdir()) if log_dir.exists() else None)
    return matches[0]
