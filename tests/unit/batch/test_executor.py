"""The Executor: success, failure, timeout, signals, large results, skip-done, CLI."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lute.execution.liveness import start_ticks
from lute.io.db import ResultsDB
from lute.managed_tasks import get_managed_task
from lute.run_task import main as run_task_main


def run(config: Path, name: str, **kwargs):
    out = io.StringIO()
    outcome = get_managed_task(name).execute(config, managed_name=name, out=out, **kwargs)
    return outcome, out.getvalue()


def records(tmp_path: Path):
    return ResultsDB.for_work_dir(tmp_path / "work").runs()


def test_success_is_recorded_and_lines_are_prefixed(make_config, tmp_path):
    config = make_config({"Test": {"str_var": "hello", "compound_var": {"int_var": 3}}})
    outcome, log = run(config, "Tester")
    assert (outcome.status, outcome.exit_code) == ("COMPLETED", 0)
    lines = log.splitlines()
    assert lines and all(line.startswith("Tester: ") for line in lines)
    assert "Tester: INFO Test: float_var=0.01 str_var=hello" in lines
    assert "Tester: Test: experiment xpptest01 run 7" in lines
    (rec,) = records(tmp_path)
    assert (rec.status, rec.exit_code, rec.managed_task, rec.task) == (
        "COMPLETED",
        0,
        "Tester",
        "Test",
    )
    assert (rec.experiment, rec.run) == ("xpptest01", "7")
    assert rec.params["compound_var"] == {"int_var": 3, "dict_var": {"a": "b"}}
    assert rec.summary["message"] == "Test passed"


def test_failure_is_recorded_with_its_error(make_config, tmp_path):
    outcome, log = run(make_config({"Test": {"throw_error": True}}), "Tester")
    assert (outcome.status, outcome.exit_code) == ("FAILED", 1)
    assert "Tester: RuntimeError: Test was asked to fail" in log
    (rec,) = records(tmp_path)
    assert rec.status == "FAILED"
    assert "throw_error" in rec.error


def test_executor_environment_does_not_leak(make_config, tmp_path):
    config = make_config({"Test": {"throw_error": False}})
    failing, _ = run(config, "FailingTester")
    passing, _ = run(config, "Tester")
    assert (failing.status, passing.status) == ("FAILED", "COMPLETED")
    assert "LUTE_throw_error" not in os.environ
    recs = records(tmp_path)
    assert [r.params["throw_error"] for r in recs] == [True, False]


def test_timeout_kills_the_task(make_config, tmp_path):
    config = make_config({"Sleep": {"seconds": 60, "print_interval": 0.2}}, task_timeout=1)
    outcome, log = run(config, "Sleeper")
    assert (outcome.status, outcome.exit_code) == ("TIMEDOUT", 124)
    assert "Sleeper: Sleep: tick 1" in log
    assert "task_timeout of 1 s reached" in log
    (rec,) = records(tmp_path)
    assert rec.status == "TIMEDOUT"


def test_large_result_over_the_channel(make_config, tmp_path):
    config = make_config({"TestSocket": {"array_size": 1_500_000, "num_arrays": 2}})
    outcome, _ = run(config, "SocketTester")
    assert outcome.status == "COMPLETED"
    (rec,) = records(tmp_path)
    payload = tmp_path / "work" / rec.payload_path
    data = payload.read_bytes()
    assert len(data) == rec.payload_bytes == 24_000_000
    assert hashlib.sha256(data).hexdigest() == rec.summary["sha256"]


def test_write_then_read_through_recorded_output(make_config, tmp_path):
    config = make_config({"TestWriteOutput": {"num_lines": 17}})
    assert run(config, "WriteTester")[0].status == "COMPLETED"
    outcome, _ = run(config, "ReadTester")
    assert outcome.status == "COMPLETED"
    writer, reader = records(tmp_path)
    assert reader.params["in_file"] == writer.outputs["out_file"]
    assert reader.summary["lines"] == 17
    assert reader.summary["sha256"] == writer.summary["sha256"]


def test_binary_task_runs_a_real_program(make_config, tmp_path):
    (tmp_path / "work" / "marker-file").parent.mkdir(exist_ok=True)
    (tmp_path / "work" / "marker-file").write_text("x")
    config = make_config(
        {"TestBinary": {"template_output": "rendered.txt", "template_values": {"answer": 42}}}
    )
    outcome, log = run(config, "BinaryTester")
    assert outcome.status == "COMPLETED"
    assert "marker-file" in log
    assert "rendered.txt" in log  # ls ran after the template was rendered
    rendered = (tmp_path / "work" / "rendered.txt").read_text()
    assert "answer = 42" in rendered and "xpptest01 run 7" in rendered


def test_binary_task_failure(make_config, tmp_path):
    config = make_config({"TestBinary": {"path": str(tmp_path / "nowhere")}})
    outcome, _ = run(config, "BinaryTester")
    assert outcome.status == "FAILED"
    assert "exited with code" in outcome.error


def test_skip_done(make_config, tmp_path):
    config = make_config({"Test": {"str_var": "a"}})
    first, _ = run(config, "Tester")
    skipped, log = run(config, "Tester", skip_done=True)
    assert skipped.skipped and skipped.exit_code == 0 and skipped.run_id == first.run_id
    assert "skipping" in log and "Test passed" in log
    assert len(records(tmp_path)) == 1
    # different parameters: runs again
    config2 = make_config({"Test": {"str_var": "b"}}, name="other.yaml")
    again, _ = run(config2, "Tester", skip_done=True)
    assert not again.skipped and again.status == "COMPLETED"
    # without --skip-done identical parameters run again
    third, _ = run(config, "Tester")
    assert not third.skipped
    assert len(records(tmp_path)) == 3


def test_skip_done_ignores_failed_records(make_config, tmp_path):
    config = make_config({"Test": {"throw_error": True}})
    run(config, "Tester")
    outcome, _ = run(config, "Tester", skip_done=True)
    assert not outcome.skipped and outcome.status == "FAILED"


def test_config_error_runs_and_records_nothing(make_config, tmp_path):
    outcome, log = run(make_config({"Test": {"float_var": "abc"}}), "Tester")
    assert (outcome.status, outcome.exit_code) == ("CONFIG_ERROR", 2)
    assert "Task Test: key float_var" in log
    assert records(tmp_path) == []


def _cli(*args: str, env_extra: dict[str, str] | None = None, **kwargs):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "lute.run_task", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_cli_unknown_name_suggests(make_config):
    result = _cli("-c", str(make_config({})), "-t", "Testr")
    assert result.returncode == 2
    assert "Did you mean: Tester" in result.stderr


def test_cli_exit_codes(make_config, tmp_path):
    ok = make_config({"Test": {}})
    assert _cli("-c", str(ok), "-t", "Tester").returncode == 0
    failed = _cli("-c", str(ok), "-t", "FailingTester")
    assert failed.returncode == 1
    assert "FailingTester: RuntimeError" in failed.stdout
    bad = _cli(
        "-c", str(make_config({"Sleep": {"seconds": "x"}}, name="bad.yaml")), "-t", "Sleeper"
    )
    assert bad.returncode == 2
    assert "bad.yaml: Task Sleep: key seconds" in bad.stdout


def test_cli_in_process_main(make_config):
    assert run_task_main(["-c", str(make_config({})), "-t", "Tester", "--skip-done"]) == 0
    assert run_task_main(["-c", str(make_config({})), "-t", "Tester", "--skip-done"]) == 0


def _running_sleeper(make_config) -> tuple[Path, subprocess.Popen[str], int]:
    """lute-run-task running a 60 s Sleeper, once its Task is ticking; the Task's pid."""
    config = make_config({"Sleep": {"seconds": 60, "print_interval": 0.1}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "lute.run_task", "-c", str(config), "-t", "Sleeper"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first_lines = ""
    for line in proc.stdout:  # wait until the Task is really running
        first_lines += line
        if "tick 1" in line:
            break
    match = re.search(r"Task process (\d+) started", first_lines)
    assert match is not None, first_lines
    return config, proc, int(match.group(1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_is_forwarded_and_recorded_as_cancelled(make_config, tmp_path, sig):
    _config, proc, task_pid = _running_sleeper(make_config)
    proc.send_signal(sig)
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 128 + sig
    assert f"CANCELLED: cancelled by {signal.Signals(sig).name}" in rest
    (rec,) = records(tmp_path)
    assert rec.status == "CANCELLED"
    # the Task process is gone too (PID 1 may reap it a moment late)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(task_pid):
        time.sleep(0.1)
    assert not _alive(task_pid)


def _alive(pid: int) -> bool:
    return start_ticks(pid) is not None  # gone and zombie both count as ended


def test_a_run_killed_with_sigkill_is_marked_lost_by_the_next_run(make_config, tmp_path):
    config, proc, task_pid = _running_sleeper(make_config)
    proc.kill()  # no chance to record anything
    proc.wait(timeout=30)
    if _alive(task_pid):  # the orphaned Task process would sleep on; it is not under test
        os.kill(task_pid, signal.SIGKILL)
    (killed,) = records(tmp_path)
    assert killed.status == "RUNNING"  # what a SIGKILL leaves behind

    outcome, log = run(config, "Tester")
    assert outcome.status == "COMPLETED"
    assert f"record {killed.id} was RUNNING on " in log and "now LOST" in log
    by_id = {r.id: r for r in records(tmp_path)}
    assert by_id[killed.id].status == "LOST"
    assert by_id[killed.id].ended_at is not None and "SIGKILL" in by_id[killed.id].error
    assert by_id[outcome.run_id].status == "COMPLETED"
