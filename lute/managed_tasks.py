"""Managed tasks: the names DAGs and ``submit_slurm.sh -t`` use, bound to Executors.

Importing this module is cheap (no Task code, numpy or matplotlib): the JID
imports it to validate task names. Environment updates given to one Executor
apply to that managed task only.
"""

from __future__ import annotations

from lute.execution.executor import Executor

# --- test workflow
Tester: Executor = Executor("Test")
FailingTester: Executor = Executor("Test")
FailingTester.update_environment({"LUTE_throw_error": "true"})
SocketTester: Executor = Executor("TestSocket")
WriteTester: Executor = Executor("TestWriteOutput")
ReadTester: Executor = Executor("TestReadOutput")
BinaryTester: Executor = Executor("TestBinary")
Sleeper: Executor = Executor("Sleep")

# --- demo pipeline: FrameSimulator >> [PeakFinder, FrameStatistician]; PeakFinder >> PeakSummarizer
FrameSimulator: Executor = Executor("SimulateFrames")
PeakFinder: Executor = Executor("FindPeaks")
FrameStatistician: Executor = Executor("ComputeFrameStatistics")
PeakSummarizer: Executor = Executor("SummarizePeaks")


def managed_tasks() -> dict[str, Executor]:
    """Every managed task by name."""
    return {name: value for name, value in globals().items() if isinstance(value, Executor)}


def managed_task_names() -> list[str]:
    """The names of all managed tasks, sorted."""
    return sorted(managed_tasks())


def get_managed_task(name: str) -> Executor:
    """The Executor of managed task ``name`` (KeyError if unknown)."""
    tasks = managed_tasks()
    if name not in tasks:
        raise KeyError(name)
    return tasks[name]
