"""A step whose identical job already ended DONE: reuse that job instead of submitting.

With the run's conf key ``jid_skip_done`` the operator (and a trigger that
submits) first asks the JID's ``done_job`` for an earlier DONE job of the same
experiment, run, managed task, ``def.parameters`` and unchanged config file.
If there is one, the step succeeds at once with that job's log and id, and
says which job it reused and the code it ran (the versions and git revisions
its log recorded: the JID reuses a job only if that is the code installed
now); no job is submitted. When the JID refuses the newest such job because
its code differs, the step log says why and the step is submitted as usual.
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
    """The earlier job's document; ``provenance``: the code it ran (``done_job``'s answer)."""
    log: str

    @property
    def provenance(self) -> Any:
        """The code the earlier job ran, as ``done_job`` answered it (None: not said)."""
        return self.job.get("provenance")

    def message(self, task: str) -> str:
        """The task log's line saying what was reused."""
        job = self.job
        return (
            f"skipped {task}: job {job.get('tool_id')} ({job.get('_id')}, ARP root "
            f"{job.get('arp_root_job_id')}) ran the same step and ended DONE; "
            "its log and job id are reused, nothing was submitted; "
            f"its code: {describe_code(self.provenance)}"
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


def describe_code(provenance: Any) -> str:
    """``lute-jid 0.1.0 (git 1a2b3c4d5e6f, dirty)``, from ``done_job``'s ``provenance``."""
    if not isinstance(provenance, dict) or not provenance:
        return "not recorded"
    parts = []
    for name, code in sorted(provenance.items()):
        code = code if isinstance(code, dict) else {}
        text = f"{name} {code.get('version') or 'not installed'}"
        if code.get("revision"):
            text += f" (git {str(code['revision'])[:12]}{', dirty' if code.get('dirty') else ''})"
        parts.append(text)
    return ", ".join(parts)


def _reused(answer: Any, task: str, log: Any) -> ReusedJob | None:
    if not isinstance(answer, dict):
        return None
    if not isinstance(answer.get("job"), dict):
        if answer.get("refused"):
            log.info("not skipping %s: %s", task, answer["refused"])
        return None
    # carried in the document, which the trigger hands to the worker as it is
    job = {**answer["job"], "provenance": answer.get("provenance")}
    return ReusedJob(job, str(answer.get("log") or ""))


def _no_answer(task: str, exc: JIDError, log: Any) -> None:
    # an older JID without the endpoint, or trouble: run the step as usual
    log.warning("cannot ask the JID for an earlier DONE job of %s (%s): submitting", task, exc)


def reused_job(client: JIDClient, doc: dict[str, Any], task: str, log: Any) -> ReusedJob | None:
    """The earlier DONE job of this step, or None (also when the JID cannot say)."""
    try:
        return _reused(client.done_job(doc), task, log)
    except JIDError as exc:
        _no_answer(task, exc, log)
        return None


async def areused_job(
    client: AsyncJIDClient, doc: dict[str, Any], task: str, log: Any
) -> ReusedJob | None:
    """:func:`reused_job` on the asyncio client."""
    try:
        return _reused(await client.done_job(doc), task, log)
    except JIDError as exc:
        _no_answer(task, exc, log)
        return None
