"""The Task base class and what a Task sees while it runs.

Lifecycle, called by :meth:`Task.execute` in the Task subprocess:
``pre_run()`` (checks, preparing inputs), ``run()`` (the work),
``post_run()`` (summarising outputs into ``self.result``). The result's
``summary`` and ``outputs`` are recorded in the results DB; ``outputs``
values are what downstream Tasks' defaults read back. A ``payload`` (bytes or
any buffer, e.g. a numpy array) is stored as a file under the work dir.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Params(Mapping[str, Any]):
    """Validated parameters as read-only attributes (``params.compound_var.int_var``)."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._values[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self.__dict__["_values"][name])
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        """A plain copy of the values."""
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"


def _wrap(value: Any) -> Any:
    return Params(value) if isinstance(value, dict) else value


@dataclass(frozen=True)
class TaskContext:
    """Where and for what a Task runs."""

    task_name: str
    managed_task: str
    experiment: str
    run: str
    work_dir: Path
    run_id: int = 0
    debug: bool = False
    config_path: str | None = None


@dataclass
class TaskResult:
    """What a Task hands back to the Executor."""

    summary: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    payload_name: str = "payload.bin"


class Task(abc.ABC):
    """One analysis step. Subclasses implement :meth:`run`."""

    def __init__(self, params: Params | Mapping[str, Any], context: TaskContext):
        self.params = params if isinstance(params, Params) else Params(params)
        self.context = context
        self.result = TaskResult()
        self.log = logging.getLogger(type(self).__name__)

    def pre_run(self) -> None:  # noqa: B027 - optional hook
        """Before the work: check inputs, create output folders."""

    @abc.abstractmethod
    def run(self) -> None:
        """The work. Fill ``self.result`` here or in post_run."""

    def post_run(self) -> None:  # noqa: B027 - optional hook
        """After the work: summarise outputs."""

    def execute(self) -> TaskResult:
        """Run the lifecycle and return the result."""
        self.log.debug("pre_run")
        self.pre_run()
        self.log.info("running %s", type(self).__name__)
        self.run()
        self.log.debug("post_run")
        self.post_run()
        return self.result
