"""An earlier job of the same step that ended DONE: what a rerun may reuse instead of submitting.

Two jobs are the same step when they have the same experiment, run (the part
of ``run_num`` before ``_``: the launcher adds the launch time after it),
managed task (``def.name``) and ``def.parameters`` (the config path and Slurm
options), and what the step reads of the config file is unchanged: the
config digest its log records (``lute.io.step_config``: the header and its
Task's section) equals the file's now; for a job whose log records none, the
file has not been modified since it was submitted. A token scoped to one run
may reuse only jobs of its own user.

Nor is a job reused once an earlier step of the same run (the same
``arp_root_job_id``) really ran again after it: its output may be what this
step reads. So a changed parameter reruns its step and the steps after it,
and the steps before it are still reused. Steps of a parallel branch that
ask after such a step ended rerun too: never a stale reuse, sometimes one
rerun more than needed.

The job must also have run the code the new step would run: its log's
provenance line (``lute.io.provenance``: the versions of ``lute-jid`` and of
the distributions that register the managed task and its Task, and the git
revision and changes of an editable checkout) must equal what the JID finds
installed now (cached 5 s). A job whose log records none, or other code, is not
reused; the answer says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from jid_service.auth import Principal
from jid_service.store import JobRecord
from lute.io import provenance
from lute.job_status import JobStatus

log = logging.getLogger(__name__)

SCAN = 500
"""How many of the experiment's newest DONE jobs are looked at."""
HEAD_BYTES = 64 * 1024
"""How much of a log's start is read for its provenance when the end alone was read."""


class DoneStep(BaseModel):
    """The answer of ``done_job``: the earlier job to reuse and its log, or none."""

    job: dict[str, Any] | None = Field(description="the earlier DONE job's document; null: none")
    log: str = Field("", description="its log (at most log_max_bytes, its end)")
    provenance: dict[str, Any] | None = Field(
        None, description="the code the reused job ran: distribution -> version, git revision, "
        "dirty, changes")
    refused: str | None = Field(
        None, description="why the newest DONE job of the step is not reused (its code)")


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
    run: str,
) -> JobRecord | None:
    """The newest DONE record of the step that ``principal`` may reuse."""
    for record in records:
        if record.status != JobStatus.DONE.value or not same_step(record, name, parameters, run):
            continue
        if principal.run is not None and record.user != principal.user:
            continue
        return record
    return None


def config_refusal(record: JobRecord, recorded: str | None, current: str | None,
                   config_modified: float | None) -> str | None:
    """Why ``record`` (its log's config digest ``recorded``) may not stand in for the step now."""
    if recorded is not None and current is not None:
        return None if recorded == current else (
            "its Task's section or the header of the config changed since")
    if config_modified is None:
        return "the config cannot be read"
    if record.created_at > config_modified:
        return None
    return "the config was modified since (and its log records no config digest)"


def ran_again_since(record: JobRecord, run_jobs: Iterable[JobRecord],
                    step_id: str) -> str | None:
    """Why ``record`` is stale: a step of this run ended DONE after it was submitted."""
    for other in run_jobs:
        if (other.id not in (step_id, record.id) and other.status == JobStatus.DONE.value
                and other.updated_at > record.created_at):
            name = (other.document.get("def") or {}).get("name", "?")
            return (f"an earlier step of this run ran again since ({name}, "
                    f"job {other.tool_id})")
    return None


def code_refusal(recorded: provenance.Provenance | None,
                 current: provenance.Provenance) -> str | None:
    """Why a job that ran ``recorded`` may not stand in for a step running ``current``."""
    if recorded is None:
        return "its log records no code provenance (a job of an older LUTE?)"
    changed = provenance.differences(recorded, current)
    return f"the code changed since: {'; '.join(changed)}" if changed else None


def refused(job: dict[str, Any], why: str) -> DoneStep:
    """The answer that ``job`` is not reused, and why (also logged)."""
    refusal = f"job {job.get('tool_id')} ({job.get('_id')}) is not reused: {why}"
    log.info("done_job: %s", refusal)
    return DoneStep(job=None, refused=refusal)


def task_of(managed_task: str) -> str | None:
    """The Task ``managed_task`` runs; None when its package cannot be imported."""
    from lute.managed_tasks import get_managed_task

    try:
        return get_managed_task(managed_task).task_name
    except Exception as err:  # an extension that fails to import: never reused
        log.warning("cannot tell the Task of managed task %s: %s", managed_task, err)
        return None


async def same_code(job: dict[str, Any], text: str, managed_task: str, task: str,
                    head: Callable[[], Awaitable[str]]) -> DoneStep:
    """The answer reusing ``job`` (its log ``text``) if it ran the code installed now.

    ``task`` is the Task ``managed_task`` runs; ``head`` reads the log's
    start, for a log whose ``text`` is only its end.
    """
    recorded = provenance.from_log(text)
    if recorded is None:
        recorded = provenance.from_log(await head())
    try:
        current = await asyncio.to_thread(provenance.current, managed_task, task)
    except Exception as err:  # an extension that fails to import: it cannot be compared
        log.warning("cannot tell the code of managed task %s: %s", managed_task, err)
        current = None
    why = ("the JID cannot tell the code the step would run" if current is None
           else code_refusal(recorded, current))
    if why is not None:
        return refused(job, why)
    assert recorded is not None
    return DoneStep(job=job, log=text, provenance=recorded.to_json())
