"""A step whose identical job already ended DONE: reuse that job instead of submitting.

With the run's conf key ``jid_skip_done`` the operator (and a trigger that
submits) first asks the JID's ``done_job`` for an earlier DONE job of the same
experiment, run, managed task, ``def.parameters`` and unchanged config file.
If there is one, the step succeeds at once with that job's log and id, and
says which job it reused; no job is submitted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lute.airflow.client import AsyncJIDClient, JIDClient, JIDError
from lute.airflow.step_outcome import task_log_lines


@dataclass(frozen=True)
class ReusedJob:
    """The earlier DONE job a step reuses, and its log."""

    job: dict[str, Any]
    log: str

    def message(self, task: str) -> str:
        """The task log's line saying what was reused."""
        job = self.job
        return (
            f"skipped {task}: job {job.get('tool_id')} ({job.get('_id')}, ARP root "
            f"{job.get('arp_root_job_id')}) ran the same step and ended DONE; "
            "its log and job id are reused, nothing was submitted"
        )

    def report(self, task: str, log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        """Write the reuse and the earlier job's log to the task log."""
        log.info("%s", self.message(task))
        for line in task_log_lines(task, self.log):
            log.info("%s", line)


    def finish(self, task: str, log: Any, ti: Any) -> Any:
        """End the step in the worker: report the reuse, push the log; the job id."""
        self.report(task, log)
        ti.xcom_push(key="log", value=self.log)
        return self.job.get("tool_id")


def _reused(answer: Any) -> ReusedJob | None:
    if not isinstance(answer, dict) or not isinstance(answer.get("job"), dict):
        return None
    return ReusedJob(answer["job"], str(answer.get("log") or ""))


def _no_answer(task: str, exc: JIDError, log: Any) -> None:
    # an older JID without the endpoint, or trouble: run the step as usual
    log.warning("cannot ask the JID for an earlier DONE job of %s (%s): submitting", task, exc)


def reused_job(client: JIDClient, doc: dict[str, Any], task: str, log: Any) -> ReusedJob | None:
    """The earlier DONE job of this step, or None (also when the JID cannot say)."""
    try:
        return _reused(client.done_job(doc))
    except JIDError as exc:
        _no_answer(task, exc, log)
        return None


async def areused_job(
    client: AsyncJIDClient, doc: dict[str, Any], task: str, log: Any
) -> ReusedJob | None:
    """:func:`reused_job` on the asyncio client."""
    try:
        return _reused(await client.done_job(doc))
    except JIDError as exc:
        _no_answer(task, exc, log)
        return None
