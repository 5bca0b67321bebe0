"""The reads: stored statuses (at once or long-polled), job lists, logs, typical durations.

Status reads are served from the store, never from the backend (the poller
keeps the store fresh); only log reads reach the backend.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from jid_service.auth import Principal
from jid_service.backend_call import call_backend
from jid_service.context import JobContext, ServicePart
from jid_service.done_steps import (
    HEAD_BYTES,
    SCAN,
    DoneStep,
    config_mtime,
    config_refusal,
    ran_again_since,
    refused,
    reusable,
    run_of,
    same_code,
    task_of,
)
from jid_service.errors import NotFoundError, OverloadedError
from jid_service.log_text import utf8_tail
from jid_service.models import ControlDocument, LogSlice, TaskDuration
from jid_service.poller import Poller
from jid_service.store import JobRecord
from jid_service.validation import check_document_experiment, read_parameters
from lute.io import step_config
from lute.job_status import JobStatus

MAX_WAITERS = 1000
"""Concurrent ``/wait`` long-polls; beyond this the JID answers 503 (overload)."""
MAX_LOG_CHUNKS = 64
"""``job_log_file`` reads at most this many ``log_max_bytes`` chunks to reach the end."""


def sent_document(doc: ControlDocument) -> dict[str, Any]:
    """A document echoed back unchanged (a job this JID does not know)."""
    return doc.model_dump(mode="json", by_alias=True)


class Readers(ServicePart):
    """Answer every read of jobs the token may see."""

    def __init__(self, context: JobContext, poller: Poller) -> None:
        super().__init__(context)
        self.poller = poller
        self._waiters = 0

    async def statuses(self, principal: Principal,
                       docs: list[ControlDocument]) -> list[dict[str, Any]]:
        """The documents with their stored status; jobs the token may not see are left out."""
        self.poller.require_fresh()
        rows = await asyncio.to_thread(self.store.get_many, [d.id for d in docs])
        out: list[dict[str, Any]] = []
        for doc in docs:
            row = rows.get(doc.id)
            if row is not None:
                if principal.may_see(row.experiment) and principal.may_see_run(
                        row.arp_root_job_id):
                    out.append(row.to_document())
            elif principal.may_see(doc.experiment) and principal.may_see_run(
                    doc.arp_root_job_id):
                out.append(sent_document(doc))
        return out

    async def wait(self, principal: Principal, docs: list[ControlDocument],
                   timeout: float) -> list[dict[str, Any]]:
        """Return as soon as any job's status differs from the one sent, or at ``timeout``.

        A stopping JID answers at once with the current states.
        """
        if self._waiters >= MAX_WAITERS:
            raise OverloadedError("too many concurrent waits; retry", retry_after=5)
        self._waiters += 1
        try:
            sent = {doc.id: (doc.status.value if isinstance(doc.status, JobStatus)
                             else doc.status) for doc in docs}
            return await self.poller.watch(
                lambda: self.statuses(principal, docs),
                lambda fresh: any(d["status"] != sent.get(d["_id"]) for d in fresh),
                timeout,
                releasable=True,
            )
        finally:
            self._waiters -= 1

    async def list_jobs(self, principal: Principal, experiment: str | None,
                        arp_root_job_id: str | None, status: str | None,
                        limit: int) -> list[dict[str, Any]]:
        """Stored jobs matching the filters that the token may see."""
        if experiment is not None:
            principal.require_experiment(experiment)
        if principal.run is not None:
            if arp_root_job_id is not None:
                principal.require_run(arp_root_job_id)
            arp_root_job_id = principal.run
        records = await asyncio.to_thread(self.store.query, principal.experiments, experiment,
                                          arp_root_job_id, status, limit)
        return [r.to_document() for r in records]

    async def record_for(self, principal: Principal, experiment: str,
                         doc: ControlDocument) -> JobRecord:
        """The stored job ``doc`` names, posted under ``experiment``; NotFoundError if none."""
        principal.require_experiment(experiment)
        check_document_experiment(doc, experiment)
        record = await asyncio.to_thread(self.store.get, doc.id)
        if record is None or record.experiment != experiment:
            raise NotFoundError(f"no job with _id {doc.id!r} in experiment {experiment!r}")
        principal.require_run(record.arp_root_job_id)
        return record

    async def log_slice(self, record: JobRecord, offset: int, limit: int) -> LogSlice:
        """Part of a job's log; ``complete`` once the job ended and the log was read."""
        if record.tool_id is None:
            return LogSlice(text="", offset=offset, next_offset=offset, complete=False)
        finished = record.finished
        chunk = await call_backend(
            self.metrics, "read_log",
            self.backend.read_log(record.tool_id, record.log_path, offset, limit),
        )
        read = chunk.next_offset - chunk.offset
        # a chunk is short only at the end of the file (up to 3 bytes of a cut
        # UTF-8 character may be held back for the next read)
        complete = finished and (read == 0 or read < limit - 3)
        return LogSlice(text=chunk.text, offset=chunk.offset, next_offset=chunk.next_offset,
                        complete=complete)

    async def whole_log(self, record: JobRecord) -> str:
        """The job's log text; of a log above ``log_max_bytes``, its end (where errors are)."""
        if record.tool_id is None:
            return ""
        limit = self.settings.log_max_bytes
        offset, previous, text = 0, "", ""
        for _ in range(MAX_LOG_CHUNKS):
            chunk = await call_backend(
                self.metrics, "read_log",
                self.backend.read_log(record.tool_id, record.log_path, offset, limit),
            )
            read = chunk.next_offset - chunk.offset
            previous, text = text, chunk.text
            offset = chunk.next_offset
            if read < limit - 3:  # short: the end of the file
                break
        if offset <= limit:
            return previous + text
        tail = utf8_tail(previous + text, limit)
        omitted = offset - len(tail.encode())
        return f"[... the first {omitted} bytes of the log omitted ...]\n{tail}"

    async def typical_duration(self, principal: Principal, experiment: str,
                               doc: ControlDocument) -> TaskDuration:
        """The median duration of the newest DONE jobs of the step ``doc`` describes."""
        principal.require_experiment(experiment)
        check_document_experiment(doc, experiment)
        task = doc.definition.name
        durations = await asyncio.to_thread(self.store.recent_durations, experiment, task,
                                            doc.definition.parameters)
        return TaskDuration(task=task, runs=len(durations),
                            median_seconds=statistics.median(durations) if durations else None)

    async def done_job(self, principal: Principal, experiment: str,
                       doc: ControlDocument) -> DoneStep:
        """The newest earlier DONE job of the step ``doc`` describes, with its log; or none."""
        principal.require_experiment(experiment)
        check_document_experiment(doc, experiment)
        parameters = read_parameters(doc.definition.parameters, self.settings)
        records = await asyncio.to_thread(self.store.query, principal.experiments, experiment,
                                          None, JobStatus.DONE.value, SCAN, True)
        found = reusable(reversed(records), principal, name=doc.definition.name,
                         parameters=doc.definition.parameters, run=run_of(doc.run_num))
        if found is None:
            return DoneStep(job=None)
        text = await self.whole_log(found)

        async def head() -> str:
            return (await self.log_slice(found, 0, HEAD_BYTES)).text

        task = await asyncio.to_thread(task_of, doc.definition.name)
        if task is None:
            return refused(found.to_document(), "the JID cannot tell the Task the step runs")
        recorded = step_config.from_log(text) or step_config.from_log(await head())
        current = await asyncio.to_thread(step_config.step_digest, parameters.config, task)
        modified = await asyncio.to_thread(config_mtime, parameters.config)
        why = config_refusal(found, recorded, current, modified)
        if why is None and doc.arp_root_job_id:
            run_jobs = await asyncio.to_thread(self.store.query, principal.experiments,
                                               experiment, str(doc.arp_root_job_id))
            why = ran_again_since(found, run_jobs, doc.id)
        if why is not None:
            return refused(found.to_document(), why)
        return await same_code(found.to_document(), text, doc.definition.name, task, head)
