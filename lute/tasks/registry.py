"""Task name -> implementing class, resolved lazily.

Names map to ``module:Class`` strings so that listing Tasks (for the JID, for
config validation, for error messages) never imports numpy or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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


def task_names() -> list[str]:
    """All known Task names."""
    return sorted(TASKS)


def task_class(name: str) -> type[Task]:
    """Import and return the class implementing Task ``name``."""
    try:
        target = TASKS[name]
    except KeyError:
        raise KeyError(f"unknown Task {name!r}; known: {', '.join(task_names())}") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
