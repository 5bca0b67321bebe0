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
