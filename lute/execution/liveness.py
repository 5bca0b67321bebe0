"""Whether the process that wrote a record is still the one running under its pid.

Linux only (``/proc``): elsewhere every process counts as alive, so nothing
is ever declared lost by mistake.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

_PROC = Path("/proc")
# a record is written a moment after its process started; a process that
# started later than this after the record is another one reusing the pid
_REUSE_MARGIN_S = 2.0


def _boot_time() -> float | None:
    try:
        for line in (_PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` in clock ticks since boot; None if gone or a zombie.

    Together with the pid it names one process: a reused pid has another.
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # fields after the command name, which may itself contain spaces and ")"
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
        return None
    return int(fields[19])


def process_start(pid: int) -> float | None:
    """Wall-clock start (epoch seconds) of a live ``pid``; None if it is gone or a zombie.

    0.0 when the boot time cannot be read (alive, start unknown).
    """
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    boot = _boot_time()
    if boot is None:
        return 0.0
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def still_running(pid: int | None, recorded_at: str | None) -> bool:
    """Whether ``pid`` is alive and started no later than the record made at ``recorded_at``.

    ``recorded_at`` is an ISO 8601 timestamp with its offset. Unknown pids and
    machines without ``/proc`` count as running.
    """
    if pid is None or recorded_at is None or not (_PROC / "self" / "stat").exists():
        return True
    if pid <= 0:
        return False
    started = process_start(pid)
    if started is None:
        return False
    return started <= datetime.fromisoformat(recorded_at).timestamp() + _REUSE_MARGIN_S
