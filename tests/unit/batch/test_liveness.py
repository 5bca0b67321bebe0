"""Telling a live run's process from a dead one, and marking dead RUNNING records LOST."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from lute.execution.liveness import still_running
from lute.io.db import LOST, ResultsDB, utc_now


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_live_process_started_before_its_record_is_running():
    assert still_running(os.getpid(), utc_now())


def test_exited_process_is_not_running():
    assert not still_running(_dead_pid(), utc_now())


def test_zombie_is_not_running():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited but not reaped: a zombie
        with open(f"/proc/{proc.pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.02)
    try:
        assert not still_running(proc.pid, utc_now())
    finally:
        proc.wait()


def test_pid_reused_by_a_later_process_is_not_running():
    # this process started long after a record from 2001: it cannot be that run
    assert not still_running(os.getpid(), "2001-01-01T00:00:00+00:00")


def test_unknown_pid_counts_as_running():
    assert still_running(None, utc_now())


def _record(db: ResultsDB, hostname: str, pid: int) -> int:
    return db.start_run(managed_task="Tester", task="Test", experiment="e", run="1",
                        params={"pid": pid}, hostname=hostname, pid=pid)


def test_mark_lost_touches_only_dead_records_of_this_host(tmp_path):
    db = ResultsDB.for_work_dir(tmp_path)
    dead = _dead_pid()
    lost = _record(db, "here", dead)
    alive = _record(db, "here", os.getpid())
    elsewhere = _record(db, "there", dead)
    finished = _record(db, "here", dead)
    db.finish_run(finished, status="COMPLETED", exit_code=0)

    assert db.mark_lost("here", still_running) == [lost]
    assert db.get(lost).status == LOST and db.get(lost).duration_s is not None
    assert db.get(alive).status == "RUNNING"
    assert db.get(elsewhere).status == "RUNNING"  # cannot be checked from here
    assert db.get(finished).status == "COMPLETED"
    assert db.mark_lost("here", still_running) == []  # done once
