"""Base class of every Task's parameter model and the helpers validators share.

Validators receive a context (``model_validate(..., context=...)``) holding the
config header, the work directory and the results DB, so a Task's input can
default to another Task's recorded output for the same experiment and run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo


class UpstreamOutputMissingError(ValueError):
    """A parameter left to an earlier step's output, and no such output is recorded.

    A ValueError, so pydantic reports it against the field; a config check made
    before the run (:mod:`lute.io.param_check`) tells it from a wrong value.
    """


class TaskParameters(BaseModel):
    """Parameters of one Task. Unknown keys are errors, so typos are caught."""

    # built at first use: a run validates one Task's model, not every model of its module
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)


def context_of(info: ValidationInfo) -> dict[str, Any]:
    """The validation context, or an empty one when validated without."""
    return info.context or {}


def work_dir_of(info: ValidationInfo) -> Path:
    """The work directory from the context (the current directory without one)."""
    return Path(context_of(info).get("work_dir") or ".")


def run_label(info: ValidationInfo) -> str:
    """``EXPERIMENT_rRUN`` with the run zero-padded, used to name output folders."""
    header = context_of(info).get("header")
    experiment = getattr(header, "experiment", None) or "noexp"
    run = str(getattr(header, "run", None) or "0")
    run_part = f"{int(run):04d}" if run.isdigit() else run
    return f"{experiment}_r{run_part}"


def output_path(info: ValidationInfo, value: str | None, default_name: str) -> str:
    """An output path: relative ones sit in the work dir, a missing one gets a default."""
    work_dir = work_dir_of(info)
    if value is None:
        return str(work_dir / run_label(info) / default_name)
    path = Path(value)
    return str(path if path.is_absolute() else work_dir / path)


def input_path(info: ValidationInfo, value: str | None) -> str | None:
    """An input path given in the config: relative ones resolve against the work dir."""
    if value is None:
        return None
    path = Path(value)
    return str(path if path.is_absolute() else work_dir_of(info) / path)


def recorded_output(
    info: ValidationInfo, task: str, key: str, *, required: bool = True
) -> str | None:
    """``key`` of the latest COMPLETED run of ``task`` for this experiment and run.

    Raises :class:`UpstreamOutputMissingError` (a ValueError, which pydantic
    reports against the field being validated) when ``required`` and nothing
    was recorded.
    """
    ctx = context_of(info)
    db = ctx.get("db")
    header = ctx.get("header")
    value = None
    if db is not None and header is not None:
        value = db.latest_output(task, str(header.experiment), str(header.run), key)
    if value is None and required:
        where = (
            f"experiment {header.experiment!r} run {header.run!r}"
            if header is not None
            else "this run"
        )
        raise UpstreamOutputMissingError(
            f"not set, and no COMPLETED {task} run with output {key!r} is recorded for {where}; "
            f"run {task} first or set this parameter"
        )
    return value
