"""Recorded processes: started in their own session, stopped only if still ours."""

import os
import subprocess
import sys
import time
from dataclasses import replace

from lute.execution.liveness import start_ticks
from lute.launch.processes import ProcessRecord, read_records, spawn, stop_records

CHILD = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
)


def _wait_gone(pid, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_spawn_records_and_stop_ends_the_whole_group(tmp_path):
    rec, proc = spawn(
        "sleeper", [sys.executable, "-c", CHILD], env=os.environ, cwd=tmp_path,
        log_dir=tmp_path / "logs", pid_dir=tmp_path / "pids",
    )
    assert rec.is_alive()
    assert os.getpgid(rec.pid) == rec.pid  # leads its own group
    assert read_records(tmp_path / "pids") == [rec]
    time.sleep(0.5)  # let it start its child
    stop_records([rec], tmp_path / "pids", timeout=5, reap=proc.poll)
    assert proc.poll() is not None
    # the grandchild was in the same group and got the signal too
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(rec.pid)], capture_output=True, text=True)
    assert out.stdout.strip() == ""
    assert read_records(tmp_path / "pids") == []


def test_a_reused_pid_is_never_signalled(tmp_path):
    # a process we did NOT record under this identity: same pid, other start time
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             start_new_session=True)
    try:
        rec, proc = spawn("x", ["true"], env=os.environ, cwd=tmp_path,
                          log_dir=tmp_path, pid_dir=tmp_path / "pids")
        proc.wait()
        # pid of `other` with a start time that is not its own; both were started
        # within one clock tick often enough that `true`'s own time may equal it
        forged = replace(rec, pid=other.pid, start_time=start_ticks(other.pid) + 1)
        assert not forged.is_alive()
        stop_records([forged], tmp_path / "pids", timeout=1)
        assert other.poll() is None  # still running: not ours, not touched
    finally:
        other.kill()
        other.wait()


def test_record_round_trip(tmp_path):
    rec = ProcessRecord("api-server", 123, 456, tmp_path / "a.log")
    rec.write(tmp_path)
    assert ProcessRecord.read(tmp_path / "api-server.pid") == rec
