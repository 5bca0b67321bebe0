"""Per-Task parameter models (pydantic v2), looked up by Task name.

Each Task has exactly one model. The modules holding them import only pydantic
and the standard library, so validating a config never imports analysis code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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


def model_for(task_name: str) -> type[TaskParameters]:
    """The parameter model of Task ``task_name`` (KeyError if there is none)."""
    target = _MODELS[task_name]
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def model_task_names() -> list[str]:
    """Task names that have a parameter model."""
    return sorted(_MODELS)
