"""The ``firecrest`` backend's reads of the job listing: states, jobs by name, lookups.

``GET /compute/{system}/jobs`` combines ``squeue --user`` and ``sacct
--starttime=now-<time_window>`` (query ``time_window``, server default
``24h``); one failing command fails the whole listing with a 500. The outcome
of the last listing is kept, so that ``/healthz`` can report listings that fail
while the gateway itself answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from jid_service.backends.base import BackendError, BackendJobState
from jid_service.backends.firecrest import decode
from jid_service.backends.firecrest.decode import JOB_ID, error_text, json_body
from jid_service.backends.firecrest.transport import FirecrestTransport
from jid_service.backends.job_cost import CostReading

log = logging.getLogger(__name__)

COST_LOOKUPS = 8
"""Job lookups one ``costs`` call makes at most (the others wait for a later call)."""


class JobListing:
    """Job listings and one-job lookups of one system.

    ``missing_lookups`` bounds the one-by-one look-ups of :meth:`statuses`.
    """

    def __init__(self, transport: FirecrestTransport, system: str, missing_lookups: int) -> None:
        self._transport = transport
        self._system = system
        self._missing_lookups = max(missing_lookups, 0)
        self._lookup_turn = 0
        self.last: tuple[float, str | None] | None = None
        """(monotonic time, error or None) of the last listing."""

    async def jobs(
        self, what: str, attempts: int | None = None, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """One job listing; BackendError (or BackendUnavailable) when it fails."""
        send = self._transport.get(f"/compute/{self._system}/jobs")
        try:
            resp = await self._transport.call(what, send, attempts=attempts, timeout=timeout)
            if resp.status_code != 200:
                raise BackendError(f"FirecREST {what}: {error_text(resp)}")
            jobs = decode.listed_jobs(json_body(what, resp))
        except BackendError as err:
            self.last = (time.monotonic(), str(err))
            raise
        self.last = (time.monotonic(), None)
        return jobs

    async def find_by_name(self, name: str) -> str | None:
        """The newest listed job called ``name``.

        ``""`` when the listing does not have it, None when there is no listing.
        """
        try:
            jobs = await self.jobs("job lookup", attempts=1)
        except BackendError:
            return None
        found = decode.newest_job_id(str(job.get("jobId")) for job in jobs
                                     if job.get("name") == name)
        return found or ""

    async def find_by_suffix(self, suffix: str) -> str | None:
        """The newest listed job whose name ends with ``suffix``; raises when it cannot tell."""
        jobs = await self.jobs("job lookup")
        return decode.newest_job_id(str(job.get("jobId")) for job in jobs
                                    if str(job.get("name", "")).endswith(suffix))

    async def statuses(self, tool_ids: list[str]) -> dict[str, BackendJobState]:
        """States of the asked jobs from one listing call, plus a bounded fallback.

        A job that ended before the listing's time window drops out of it. Up
        to ``missing_lookups`` such ids per call are asked for one by one
        (``GET /compute/{system}/jobs/{id}``, which searches all of ``sacct``),
        taking turns when more are missing; ids still unknown are left out.
        """
        wanted = set(tool_ids)
        if not wanted:
            return {}
        result: dict[str, BackendJobState] = {}
        for job in await self.jobs("job listing"):
            tool_id = str(job.get("jobId", ""))
            if tool_id not in wanted:
                continue
            result[tool_id] = decode.job_state(tool_id, job.get("status") or {})
        missing = sorted(t for t in wanted - result.keys() if JOB_ID.fullmatch(t))
        if missing and self._missing_lookups:
            start = self._lookup_turn % len(missing)
            batch = (missing[start:] + missing[:start])[: self._missing_lookups]
            self._lookup_turn += len(batch)
            for tool_id in batch:
                state = await self.lookup(tool_id)
                if state is not None:
                    result[tool_id] = state
        return result

    async def lookup(self, tool_id: str) -> BackendJobState | None:
        """One job's state by id; None when FirecREST does not know it or cannot answer."""
        job = await self.job(tool_id)
        return decode.job_state(tool_id, job.get("status") or {}) if job is not None else None

    async def costs(self, tool_ids: Sequence[str]) -> dict[str, CostReading]:
        """What finished jobs cost, from one lookup each, ``COST_LOOKUPS`` per call at most.

        A lookup, not the listing: a job's ``time`` in the listing is the one
        of the tick it was listed at, and it drops out of the listing's window.
        """
        out: dict[str, CostReading] = {}
        for tool_id in [t for t in tool_ids if JOB_ID.fullmatch(t)][:COST_LOOKUPS]:
            job = await self.job(tool_id)
            if job is not None:
                out[tool_id] = decode.job_cost(tool_id, job)
        return out

    async def job(self, tool_id: str) -> dict[str, Any] | None:
        """One job as ``GET /compute/{system}/jobs/{id}`` answers it (it searches all of
        ``sacct``); None when FirecREST does not know it or cannot answer."""
        send = self._transport.get(f"/compute/{self._system}/jobs/{tool_id}")
        try:
            resp = await self._transport.call("job lookup", send, attempts=1)
        except BackendError as err:
            log.info("FirecREST lookup of job %s: %s", tool_id, err)
            return None
        if resp.status_code != 200:
            return None
        try:
            data = resp.json()
        except ValueError:
            return None
        return next((job for job in decode.listed_jobs(data)
                     if str(job.get("jobId", "")) == tool_id), None)
