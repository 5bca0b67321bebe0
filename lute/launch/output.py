"""What the launcher prints: its own messages and the tasks' log lines."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TextIO


def _now() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


class Output:
    """Where the launcher writes: one line at a time, flushed (Slurm logs it)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def info(self, message: str) -> None:
        """A launcher message."""
        print(f"{_now()} launch: {message}", file=self.out, flush=True)

    def log_line(self, label: str, line: str, own_prefix: str | None = None) -> None:
        """One line of a task's log, prefixed with the task name."""
        # the Executor already prefixes its own lines with the managed task name
        prefix = f"{own_prefix or label}: "
        if line.startswith(prefix):
            line = line[len(prefix) :]
        print(f"[{label}] {line}", file=self.out, flush=True)


def short_task_name(task_id: str) -> str:
    """A task id without its task-group prefixes."""
    return task_id.rsplit(".", 1)[-1]


def seconds_text(value: object) -> str:
    """``12.3 s``, ``4m 05s`` or ``2h 03m``; ``-`` when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def bytes_text(value: object) -> str:
    """A size in binary units (``98.4 MiB``); ``-`` when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


def percent_text(value: object) -> str:
    """A fraction as a percentage (``37%``); ``-`` when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value * 100:.0f}%"
