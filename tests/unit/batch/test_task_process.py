"""How the Task process starts: forked from the Executor, or a new interpreter.

Both ways must look the same to the Task and to the Executor's caller: the
same outcomes, exit statuses, signals, environment and isolation.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lute.execution.executor import Executor
from lute.execution.liveness import start_ticks
from lute.execution.task_process import START_ENV, start_method
from lute.io.db import ResultsDB
from lute.io.models.base import TaskParameters
from lute.managed_tasks import get_managed_task
from lute.tasks.base import Task

METHODS = ["fork", "spawn"]


class ProbeParameters(TaskParameters):
    """What the probe Task is asked to do."""

    action: str = "report"
    marker: str | None = None


class Probe(Task):
    """Reports what its process looks like, or ends in the way it is asked to."""

    def run(self) -> None:
        action = self.params.action
        if action == "exit3":
            sys.exit(3)
        if action == "interrupt":
            raise KeyboardInterrupt
        if action == "atexit":
            import atexit

            marker = Path(self.params.marker)
            atexit.register(marker.write_text, "ran")
        self.log.info("probe log line")
        self.result.summary = {
            "fds": _open_files(),
            "cwd": os.getcwd(),
            "session_leader": os.getsid(0) == os.getpid(),
            "stdin": sys.stdin.read(),
            "probe_var": os.environ.get("PROBE_VAR"),
            "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
            "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            "argv0": Path(sys.argv[0]).name,
        }


def _open_files() -> dict[int, str]:
    """What each open file descriptor of this process refers to."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
    return found


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Executor:
    """An Executor of the probe Task (visible to forked Task processes only)."""
    import lute.execution.task_process
    import lute.io.validation
    import lute.tasks.registry

    real_model, real_class = lute.io.validation.model_for, lute.tasks.registry.task_class
    monkeypatch.setattr(
        lute.io.validation,
        "model_for",
        lambda name: ProbeParameters if name == "Probe" else real_model(name),
    )
    monkeypatch.setattr(
        lute.tasks.registry,
        "task_class",
        lambda name: Probe if name == "Probe" else real_class(name),
    )
    monkeypatch.setenv(START_ENV, "fork")
    # these tests are about the forked process: a thread another test left
    # idle in this pytest process must not turn the fork into a spawn
    monkeypatch.setattr(lute.execution.task_process, "fork_is_safe", lambda: True)
    executor = Executor("Probe")
    executor.update_environment({"PROBE_VAR": "from the executor"})
    return executor


def run_probe(executor: Executor, config: Path):
    out = io.StringIO()
    return executor.execute(config, managed_name="Prober", out=out), out.getvalue()


def test_forked_task_is_set_up_like_a_new_process(probe, make_config, tmp_path):
    stray = open(tmp_path / "stray.txt", "w")  # noqa: SIM115 - must stay open during the run
    try:
        outcome, log = run_probe(probe, make_config({"Probe": {}}))
    finally:
        stray.close()
    assert outcome.status == "COMPLETED", log
    facts = outcome.summary
    fds = {int(fd): target for fd, target in facts["fds"].items()}
    assert fds[0] == os.devnull
    assert fds[1] == fds[2] and fds[1].startswith("pipe:")
    others = sorted(target.split(":")[0] for fd, target in fds.items() if fd > 2)
    assert others == ["socket"], fds  # the channel only: no stray file, DB or pipe end
    assert facts["cwd"] == str((tmp_path / "work").resolve())
    assert facts["session_leader"] is True
    assert facts["stdin"] == ""
    assert facts["probe_var"] == "from the executor"
    assert "PROBE_VAR" not in os.environ
    assert facts["unbuffered"] == "1"
    assert facts["sigterm_default"] is True
    assert facts["argv0"] == "child.py"
    assert "Prober: INFO Probe: probe log line" in log  # not caught by the caller's logging


def test_forked_task_sys_exit_code_is_its_exit_status(probe, make_config):
    outcome, log = run_probe(probe, make_config({"Probe": {"action": "exit3"}}))
    assert (outcome.status, outcome.exit_code) == ("FAILED", 1)
    assert outcome.error == "Task process exited with code 3", log


def test_forked_task_keyboard_interrupt_dies_by_sigint(probe, make_config):
    outcome, log = run_probe(probe, make_config({"Probe": {"action": "interrupt"}}))
    assert outcome.status == "FAILED"
    assert outcome.error == "Task process killed by SIGINT", log
    assert "KeyboardInterrupt" in log


def test_forked_task_runs_its_atexit_functions(probe, make_config, tmp_path):
    marker = tmp_path / "atexit-ran"
    config = make_config({"Probe": {"action": "atexit", "marker": str(marker)}})
    outcome, log = run_probe(probe, config)
    assert outcome.status == "COMPLETED", log
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("method", METHODS)
def test_both_ways_give_the_same_outcomes(method, make_config, tmp_path, monkeypatch):
    monkeypatch.setenv(START_ENV, method)
    config = make_config(
        {
            "Test": {"str_var": "both"},
            "TestSocket": {"array_size": 200_000, "num_arrays": 1},
        }
    )
    short = make_config({"Sleep": {"seconds": 30, "print_interval": 0.2}}, "short.yaml",
                        task_timeout=1.5)
    results = {}
    for name in ("Tester", "FailingTester", "SocketTester", "Sleeper"):
        out = io.StringIO()
        path = short if name == "Sleeper" else config
        outcome = get_managed_task(name).execute(path, managed_name=name, out=out)
        results[name] = (outcome.status, outcome.exit_code, out.getvalue())
    assert results["Tester"][:2] == ("COMPLETED", 0)
    assert "Tester: INFO Test: float_var=0.01 str_var=both" in results["Tester"][2]
    assert "Tester: Test: experiment xpptest01 run 7" in results["Tester"][2]
    assert results["FailingTester"][:2] == ("FAILED", 1)
    assert "Test was asked to fail" in results["FailingTester"][2]
    assert results["SocketTester"][:2] == ("COMPLETED", 0)
    assert results["Sleeper"][:2] == ("TIMEDOUT", 124)
    assert "LUTE_throw_error" not in os.environ
    recorded = [r.status for r in ResultsDB.for_work_dir(tmp_path / "work").runs()]
    assert recorded == ["COMPLETED", "FAILED", "COMPLETED", "TIMEDOUT"]


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


@pytest.mark.parametrize("method", METHODS)
def test_cli_task_process_and_sigterm(method, make_config, tmp_path):
    config = make_config({"Sleep": {"seconds": 60, "print_interval": 0.1}})
    env = dict(os.environ, **{START_ENV: method})
    proc = subprocess.Popen(
        [sys.executable, "-m", "lute.run_task", "-c", str(config), "-t", "Sleeper"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if "tick 1" in line:
            break
    match = re.search(r"Task process (\d+) started", seen)
    assert match is not None, seen
    task_pid = int(match.group(1))
    task_argv = _cmdline(task_pid)
    if method == "fork":  # no second interpreter: the Task runs in a copy of lute-run-task
        assert task_argv == _cmdline(proc.pid)
    else:
        assert task_argv[-3:-1] == ["-m", "lute.execution.child"]
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert "CANCELLED: cancelled by SIGTERM" in rest
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and start_ticks(task_pid) is not None:
        time.sleep(0.1)
    assert start_ticks(task_pid) is None
    (rec,) = ResultsDB.for_work_dir(tmp_path / "work").runs()
    assert rec.status == "CANCELLED"


def test_start_method_falls_back_to_a_new_interpreter_while_threads_run():
    # a fresh interpreter has one thread: fork (this pytest process may hold
    # threads other tests left behind)
    fresh = subprocess.run(
        [sys.executable, "-c",
         "from lute.execution.task_process import start_method; print(start_method({}))"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert fresh.stdout.strip() == "fork"
    assert start_method({START_ENV: "spawn"}) == "spawn"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert start_method({START_ENV: "fork"}) == "spawn"
    finally:
        stop.set()
        other.join()


def test_unknown_start_method_is_a_config_error(make_config, tmp_path, monkeypatch):
    monkeypatch.setenv(START_ENV, "vfork")
    out = io.StringIO()
    outcome = get_managed_task("Tester").execute(make_config({}), out=out)
    assert (outcome.status, outcome.exit_code) == ("CONFIG_ERROR", 2)
    assert f"{START_ENV}='vfork': expected one of fork, spawn" in out.getvalue()
    assert ResultsDB.for_work_dir(tmp_path / "work").runs() == []
