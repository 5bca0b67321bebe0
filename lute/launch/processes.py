"""Background processes started by the dev stack, each recorded by pid.

Every process is started in its own session (so it leads its own process
group), and its pid plus its kernel start time are written to a pid file. The
start time guards against pid reuse: a recorded pid whose start time differs
is some other program and is never signalled. Stopping sends SIGTERM to the
recorded process group, then SIGKILL after a timeout. Nothing is ever looked
up or killed by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lute.execution.liveness import start_ticks


@dataclass(frozen=True)
class ProcessRecord:
    """One process the stack started: name, pid, start time, log file."""

    name: str
    pid: int
    start_time: int
    log_path: Path

    def is_alive(self) -> bool:
        """True while the recorded process (the same one, not a reused pid) runs."""
        return start_ticks(self.pid) == self.start_time

    def write(self, pid_dir: Path) -> Path:
        """Write the record to ``<pid_dir>/<name>.pid`` (JSON) and return its path."""
        pid_dir.mkdir(parents=True, exist_ok=True)
        path = pid_dir / f"{self.name}.pid"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "name": self.name,
                    "pid": self.pid,
                    "start_time": self.start_time,
                    "log_path": str(self.log_path),
                }
            )
        )
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> ProcessRecord:
        """Read a record written by :meth:`write`."""
        data = json.loads(path.read_text())
        return cls(
            name=data["name"],
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            log_path=Path(data["log_path"]),
        )


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
    pid_dir: Path,
) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
    """Start ``argv`` in a new session, log to ``<log_dir>/<name>.log``, record its pid."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    start = start_ticks(proc.pid)
    if start is None:  # ended before we could look: record it anyway, it is dead
        start = -1
    record = ProcessRecord(name=name, pid=proc.pid, start_time=start, log_path=log_path)
    record.write(pid_dir)
    return record, proc


def read_records(pid_dir: Path) -> list[ProcessRecord]:
    """All records in ``pid_dir``, in the order they were started."""
    if not pid_dir.is_dir():
        return []
    records = []
    for path in pid_dir.glob("*.pid"):
        try:
            records.append(ProcessRecord.read(path))
        except (OSError, ValueError, KeyError):
            continue
    return sorted(records, key=lambda r: r.start_time)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(rec: ProcessRecord) -> bool:
    """True if signalling ``rec``'s process group reaches only what we started.

    Either the leader is still the recorded process, or the leader is gone but
    its group lives on (Linux never hands out a pid that is still a group id,
    so such a group is the one we created).
    """
    if rec.is_alive():
        return True
    if rec.start_time < 0:
        return False
    return start_ticks(rec.pid) is None and _group_alive(rec.pid)


def stop_records(
    records: Sequence[ProcessRecord],
    pid_dir: Path,
    timeout: float = 20.0,
    reap: Callable[[], object] | None = None,
) -> None:
    """SIGTERM each recorded process group, SIGKILL what is left after ``timeout``.

    ``reap`` is called while waiting so a parent that holds the processes'
    handles can collect its exited children (a zombie still counts as a group
    member).
    """
    targets = [rec for rec in records if _ours(rec)]
    for rec in targets:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while targets and time.monotonic() < deadline:
        if reap is not None:
            reap()
        targets = [r for r in targets if _ours(r)]
        if targets:
            time.sleep(0.2)
    for rec in targets:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(rec.pid, signal.SIGKILL)
    if reap is not None:
        reap()
    for rec in records:
        (pid_dir / f"{rec.name}.pid").unlink(missing_ok=True)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty if missing)."""
    try:
        data = path.read_bytes()[-20000:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
