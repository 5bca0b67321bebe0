"""Per-Task parameter models (pydantic v2), looked up by Task name.

Each Task has exactly one model. The modules holding them import only pydantic
and the standard library, so validating a config never imports analysis code.
Other packages add models through the entry-point group ``lute.task_models``
(:mod:`lute.extensions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lute.extensions import MODELS_GROUP, Registration, load, merged

if TYPE_CHECKING:
    from lute.io.models.base import TaskParameters

_MODELS: dict[str, str] = {
    "Test": "lute.io.models.test_params:TestParameters",
    "TestSocket": "lute.io.models.test_params:TestSocketParameters",
    "TestWriteOutput": "lute.io.models.test_params:TestWriteOutputParameters",
    "TestReadOutput": "lute.io.models.test_params:TestReadOutputParameters",
    "TestBinary": "lute.io.models.test_params:TestBinaryParameters",
    "Sleep": "lute.io.models.test_params:SleepParameters",
    "SimulateFrames": "lute.io.models.frames_params:SimulateFramesParameters",
    "FindPeaks": "lute.io.models.frames_params:FindPeaksParameters",
    "ComputeFrameStatistics": "lute.io.models.frames_params:ComputeFrameStatisticsParameters",
    "SummarizePeaks": "lute.io.models.frames_params:SummarizePeaksParameters",
}


def _models() -> dict[str, Registration]:
    """The built-in models and those packages register (group ``lute.task_models``)."""
    return merged(MODELS_GROUP, _MODELS)


def model_for(task_name: str) -> type[TaskParameters]:
    """The parameter model of Task ``task_name`` (KeyError if there is none)."""
    return load(_models()[task_name])  # type: ignore[return-value]


def model_task_names() -> list[str]:
    """Task names that have a parameter model."""
    return sorted(_models())
