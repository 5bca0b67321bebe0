"""Task name -> implementing class, resolved lazily.

Names map to ``module:Class`` strings so that listing Tasks (for the JID, for
config validation, for error messages) never imports numpy or matplotlib.
Other packages add Tasks through the entry-point group ``lute.tasks``
(:mod:`lute.extensions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lute.extensions import TASKS_GROUP, Registration, load, merged

if TYPE_CHECKING:
    from lute.tasks.base import Task

TASKS: dict[str, str] = {
    "Test": "lute.tasks.test_tasks:Test",
    "TestSocket": "lute.tasks.test_tasks:TestSocket",
    "TestWriteOutput": "lute.tasks.test_tasks:TestWriteOutput",
    "TestReadOutput": "lute.tasks.test_tasks:TestReadOutput",
    "TestBinary": "lute.tasks.test_tasks:TestBinary",
    "Sleep": "lute.tasks.test_tasks:Sleep",
    "SimulateFrames": "lute.tasks.frames:SimulateFrames",
    "FindPeaks": "lute.tasks.frames:FindPeaks",
    "ComputeFrameStatistics": "lute.tasks.frames:ComputeFrameStatistics",
    "SummarizePeaks": "lute.tasks.frames:SummarizePeaks",
}


def registrations() -> dict[str, Registration]:
    """Every Task: the built-in ones and those packages register (group ``lute.tasks``)."""
    return merged(TASKS_GROUP, TASKS)


def task_names() -> list[str]:
    """All known Task names."""
    return sorted(registrations())


def task_class(name: str) -> type[Task]:
    """Import and return the class implementing Task ``name``."""
    table = registrations()
    try:
        registration = table[name]
    except KeyError:
        raise KeyError(f"unknown Task {name!r}; known: {', '.join(sorted(table))}") from None
    return load(registration)  # type: ignore[return-value]
