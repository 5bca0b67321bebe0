"""Run one command and record how it ended in an exit-code file (the local backend's wrapper).

Usage: ``python -m jid_service.backends.local_runner EXITFILE -- ARGV...``

The job directory is EXITFILE's directory. First the runner claims the job by
creating ``started`` there exclusively (a second runner of the same job exits
at once, doing nothing), records ``pid`` (its pid and kernel start time), and
stops if the job was cancelled meanwhile. The exit file is written atomically
(temp file + rename) as JSON ``{"exit_code": int, "cancelled": bool}``, with what
the run cost once the command ran: ``started_at`` and ``ended_at`` (Unix
seconds), ``max_rss_bytes`` (the largest ``ru_maxrss`` of the command's
process tree, as ``getrusage(RUSAGE_CHILDREN)`` reports it) and
``cpu_seconds`` (user + system time of the command and its waited-for children).
SIGTERM/SIGINT are forwarded to the command and recorded as a cancellation; a
command that does not stop within ``GRACE_SECONDS`` is killed.

The command is a new process (``subprocess.Popen``) unless the caller passes
another ``start``: the local backend's fork server runs ``lute.run_task`` in a
forked child instead (:mod:`jid_service.backends.local_forkserver`).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Protocol

from lute.execution.liveness import start_ticks

GRACE_SECONDS = 10.0


class Command(Protocol):
    """What the runner needs of its running command (a subset of ``Popen``)."""

    def poll(self) -> int | None:
        """The exit status if the command ended, else None."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Block until it ends (``subprocess.TimeoutExpired`` after ``timeout``)."""
        ...

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to it."""
        ...

    def kill(self) -> None:
        """SIGKILL it."""
        ...


def write_exit_file(path: Path, exit_code: int | None, cancelled: bool,
                    usage: Mapping[str, float | int] | None = None) -> None:
    """Write the outcome (and what the run cost) atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"exit_code": exit_code, "cancelled": cancelled, **(usage or {})}))
    os.replace(tmp, path)


def claim(job_dir: Path) -> bool:
    """Create ``started`` exclusively and record the pid; False if another runner has it."""
    try:
        os.close(os.open(job_dir / "started", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    tmp = job_dir / "pid.tmp"
    own_start = start_ticks(os.getpid())
    tmp.write_text(f"{os.getpid()} {'' if own_start is None else own_start}")
    os.replace(tmp, job_dir / "pid")
    return True


def usage_since(started_at: float) -> dict[str, float | int]:
    """What the waited-for children cost since ``started_at`` (Linux: ru_maxrss in KiB)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"started_at": started_at, "ended_at": time.time(),
            "max_rss_bytes": int(children.ru_maxrss) * 1024,
            "cpu_seconds": round(children.ru_utime + children.ru_stime, 3)}


def main(argv: list[str] | None = None,
         start: Callable[[list[str]], Command] = subprocess.Popen) -> int:
    """Run the command after ``--`` (started by ``start``); return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: local_runner EXITFILE -- ARGV...", file=sys.stderr)
        return 2
    exit_file = Path(args[0])
    command = args[2:]
    job_dir = exit_file.parent
    if not claim(job_dir):
        return 0  # another runner runs (or ran) this job
    if exit_file.exists():
        return 0  # cancelled before it started; the outcome is recorded
    if (job_dir / "cancelled").exists():
        write_exit_file(exit_file, 143, cancelled=True)
        return 143
    cancelled = threading.Event()
    child: Command | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        cancelled.set()
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started_at = time.time()
    try:
        child = start(command)
    except OSError as err:
        print(f"local_runner: cannot start {command[0]!r}: {err}", file=sys.stderr, flush=True)
        write_exit_file(exit_file, 127, cancelled.is_set())
        return 127
    if cancelled.is_set():  # a signal arrived before the child existed
        child.send_signal(signal.SIGTERM)
    while True:
        try:
            code = child.wait(timeout=GRACE_SECONDS if cancelled.is_set() else None)
            break
        except subprocess.TimeoutExpired:
            child.kill()
    if code < 0:  # killed by a signal: the shell convention 128 + signal number
        code = 128 - code
    write_exit_file(exit_file, code, cancelled.is_set(), usage_since(started_at))
    return code


if __name__ == "__main__":
    sys.exit(main())
