"""An earlier job of the same step that ended DONE: what a rerun may reuse instead of submitting.

Two jobs are the same step when they have the same experiment, run (the part
of ``run_num`` before ``_``: the launcher adds the launch time after it),
managed task (``def.name``) and ``def.parameters`` (the config path and Slurm
options), and the config file has not been modified since the earlier job
was submitted (its content then is the content now). A token scoped to one
run may reuse only jobs of its own user.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from jid_service.auth import Principal
from jid_service.store import JobRecord
from lute.job_status import JobStatus

SCAN = 500
"""How many of the experiment's newest DONE jobs are looked at."""


class DoneStep(BaseModel):
    """The answer of ``done_job``: the earlier job to reuse and its log, or none."""

    job: dict[str, Any] | None = Field(description="the earlier DONE job's document; null: none")
    log: str = Field("", description="its log (at most log_max_bytes, its end)")


def run_of(run_num: Any) -> str:
    """The run a ``run_num`` names (``12_20260121T080117Z`` -> ``12``)."""
    return str(run_num).split("_", 1)[0]


def config_mtime(config: Path) -> float | None:
    """When the config file was last modified; None if it cannot be read."""
    try:
        return config.stat().st_mtime
    except OSError:
        return None


def same_step(record: JobRecord, name: str, parameters: str, run: str) -> bool:
    """Whether ``record`` ran the step named by ``name``, ``parameters`` and ``run``."""
    definition = record.document.get("def")
    return (
        isinstance(definition, dict)
        and definition.get("name") == name
        and definition.get("parameters") == parameters
        and run_of(record.document.get("run_num")) == run
    )


def reusable(
    records: Iterable[JobRecord], principal: Principal, *, name: str, parameters: str,
    run: str, config_modified: float | None,
) -> JobRecord | None:
    """The newest DONE record of the step submitted after the config's last change."""
    if config_modified is None:
        return None
    for record in records:
        if record.status != JobStatus.DONE.value or not same_step(record, name, parameters, run):
            continue
        if principal.run is not None and record.user != principal.user:
            continue
        if record.created_at > config_modified:
            return record
    return None
