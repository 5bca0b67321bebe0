"""Managed tasks: the names DAGs and ``submit_slurm.sh -t`` use, bound to Executors.

Importing this module is cheap (no Task code, numpy or matplotlib): the JID
imports it to validate task names. Environment updates given to one Executor
apply to that managed task only. Other packages add managed tasks through
the entry-point group ``lute.managed_tasks`` (:mod:`lute.extensions`); their
names are listed from the installed metadata without importing them.
"""

from __future__ import annotations

from lute.execution.executor import Executor
from lute.extensions import MANAGED_TASKS_GROUP, Registration, load, merged

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


def _built_in() -> dict[str, Executor]:
    return {name: value for name, value in globals().items() if isinstance(value, Executor)}


def registrations() -> dict[str, Registration]:
    """Every managed task's registration: built in, or a package's (``lute.managed_tasks``)."""
    built_in = {name: f"{__name__}:{name}" for name in _built_in()}
    return merged(MANAGED_TASKS_GROUP, built_in)


def _loaded(registration: Registration) -> Executor:
    value = load(registration)
    if not isinstance(value, Executor):
        raise TypeError(
            f"managed task {registration.name!r} of {registration.package} "
            f"({registration.target}) is a {type(value).__name__}, not an Executor"
        )
    return value


def managed_tasks() -> dict[str, Executor]:
    """Every managed task by name (a package's are imported here)."""
    return {name: _loaded(reg) for name, reg in registrations().items()}


def managed_task_names() -> list[str]:
    """The names of all managed tasks, sorted; imports no package's code."""
    return sorted(registrations())


def get_managed_task(name: str) -> Executor:
    """The Executor of managed task ``name`` (KeyError if unknown)."""
    registration = registrations().get(name)
    if registration is None:
        raise KeyError(name)
    return _loaded(registration)
