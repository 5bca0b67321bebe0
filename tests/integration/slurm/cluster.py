"""Helpers for tests on the real single-node Slurm cluster (started by .ci/run).

Tests that need the cluster fail (never skip) with a message saying how to
start it, so a CI machine without Slurm reports the gap instead of hiding it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
# LUTE_TEST_LAUNCHER lets these tests drive another install's submit_slurm.sh
LAUNCHER = Path(
    os.environ.get("LUTE_TEST_LAUNCHER") or REPO_ROOT / "launch_scripts" / "submit_slurm.sh"
)
START_SCRIPT = REPO_ROOT / "launch_scripts" / "dev" / "start_slurm.sh"
VENV_BIN = Path(sys.executable).parent
SLURMCTLD_EXE = "/usr/sbin/slurmctld"

T = TypeVar("T")


def require_slurm() -> None:
    """Fail the test unless Slurm clients exist and the controller answers."""
    missing = [c for c in ("sbatch", "squeue", "scontrol", "scancel") if shutil.which(c) is None]
    if missing:
        pytest.fail(
            f"Slurm client commands missing ({', '.join(missing)}): run "
            f"{START_SCRIPT.relative_to(REPO_ROOT)} (or .ci/run) first",
            pytrace=False,
        )
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("scontrol ping timed out: the Slurm controller does not answer", pytrace=False)
    if "is UP" not in ping.stdout:
        pytest.fail(
            "the Slurm controller is not up (scontrol ping: "
            f"{(ping.stdout + ping.stderr).strip()!r}); start it with "
            f"{START_SCRIPT.relative_to(REPO_ROOT)}",
            pytrace=False,
        )
    if not LAUNCHER.is_file():
        pytest.fail(f"the launcher {LAUNCHER} is missing", pytrace=False)


def job_env() -> dict[str, str]:
    """Environment for processes that submit jobs: this venv's bin first on PATH.

    sbatch exports the submitter's environment to the job, so the job finds
    this checkout's ``lute-run-task``.
    """
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def write_config(directory: Path, *, sleep_seconds: float = 3.0, experiment: str = "tst00001",
                 run: int = 7) -> Path:
    """A two-document task config (header + Task parameters) with its work dir in ``directory``."""
    work_dir = directory / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    path = directory / "test.yaml"
    path.write_text(
        f"""%YAML 1.2
---
title: slurm integration test
experiment: {experiment}
run: {run}
date: 2026/01/01
lute_version: 0.1
task_timeout: 600
work_dir: {work_dir}
...
---
Test:
  float_var: 0.01
  str_var: integration
  compound_var:
    int_var: 10
    dict_var: {{"a": "b"}}
  throw_error: false
Sleep:
  seconds: {sleep_seconds}
  print_interval: 0.5
...
"""
    )
    return path


def wait_until(probe: Callable[[], T | None], timeout: float, interval: float = 0.5,
               what: str = "condition") -> T:
    """Call ``probe`` until it returns something not None; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        time.sleep(interval)


def write_counting_shims(directory: Path, log: Path,
                         commands: tuple[str, ...] = ("squeue", "sacct", "scontrol")) -> None:
    """Wrappers that log each run of a Slurm command to ``log`` and exec the real one.

    Put ``directory`` first on a daemon's PATH to count its scheduler calls.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name in commands:
        real = shutil.which(name)
        assert real is not None, f"{name} not found"
        shim = directory / name
        shim.write_text(f"#!/bin/sh\necho {shlex.quote(name)} >> {shlex.quote(str(log))}\n"
                        f'exec {shlex.quote(real)} "$@"\n')
        shim.chmod(0o755)


def counted_calls(log: Path) -> Counter[str]:
    """Runs per command logged by :func:`write_counting_shims`."""
    return Counter(log.read_text().split()) if log.exists() else Counter()


def squeue_comments() -> dict[str, str]:
    """Job id -> comment of every job Slurm still lists (``squeue -t all``)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-O", "JobID:|,Comment:"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    result: dict[str, str] = {}
    for line in out.splitlines():
        job_id, _, comment = line.partition("|")
        result[job_id.strip()] = comment.strip()
    return result


def scancel_quietly(job_ids: list[str]) -> None:
    """Cancel leftover jobs of a test (ignore errors: they may be gone)."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30, check=False)


# ------------------------------------------------------- controller outage ---
def slurmctld_pid() -> int:
    """The slurmctld pid recorded by the dev start script, checked against /proc."""
    state_dir = Path(os.environ.get("SLURM_STATE_DIR", "/tmp/lute-slurm"))
    pid_file = state_dir / "pids" / "slurmctld.pid"
    if not pid_file.is_file():
        pytest.fail(f"no slurmctld pid recorded in {pid_file}: was Slurm started by "
                    f"{START_SCRIPT.relative_to(REPO_ROOT)}?", pytrace=False)
    pid = int(pid_file.read_text().strip())
    exe = os.readlink(f"/proc/{pid}/exe") if Path(f"/proc/{pid}").exists() else ""
    # Debian's /usr/sbin/slurmctld is a symlink (slurmctld-wlm); the script records the target
    if exe != os.path.realpath(SLURMCTLD_EXE):
        pytest.fail(f"recorded pid {pid} is not {SLURMCTLD_EXE} (it is {exe!r})", pytrace=False)
    return pid


@contextlib.contextmanager
def frozen_slurmctld() -> Iterator[int]:
    """SIGSTOP the recorded slurmctld; SIGCONT it on exit, whatever happens.

    A stopped controller looks like an unreachable one to clients (they time
    out), and resumes with its state intact.
    """
    pid = slurmctld_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True,
                                  timeout=30, check=False)
            if "is UP" in ping.stdout:
                break
            time.sleep(0.5)
