"""Files of 1 MiB or more through FirecREST's transfer jobs and its S3 staging area.

FirecREST v2 moves such files in two legs: between the JID and an S3 bucket
(presigned URLs) and between the bucket and the cluster's file system (a Slurm
job FirecREST submits for the user). pyfirecrest's client makes the FirecREST
and S3 requests; this module follows the job, bounds it, and reports it.

In (pyfirecrest's ``upload(..., blocking=False)``): ``POST
/filesystem/{system}/transfer/upload`` with ``{"path": <remote file>,
"transfer_directives": {"file_size": N, "transfer_method": "s3"}}`` answers 201
``{"transferJob": {"jobId", "system", "workingDirectory", "logs": {"outputLog",
"errorLog"}}, "transferDirectives": {"transferMethod": "s3", "partsUploadUrls":
[...], "completeUploadUrl", "maxPartSize"}}``; the job is queued at once and
copies the object into place once it exists. ``upload_file_to_stage()`` PUTs
each part to its URL and POSTs S3's ``CompleteMultipartUpload`` (the ETags).

Out (``download(..., blocking=False)``): ``GET .../ops/stat``, then ``POST
/filesystem/{system}/transfer/download`` with ``{"source_path": <remote file>,
"transfer_directives": {"transferMethod": "s3"}}`` answers 201 with the
``transferJob`` and ``transferDirectives.downloadUrl``; the job puts the file
into the bucket, then ``download_file_from_stage()`` GETs it.

The job is followed here, not with pyfirecrest's ``wait_for_job``: that one
fails on the first 5xx of a look-up and sleeps up to a minute between looks.
A transfer that fails or runs out of time has its job cancelled, since an
upload job otherwise waits a day for an object that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from jid_service.backends.base import BackendUnavailable, StagingFailed
from jid_service.backends.firecrest.decode import error_text, view_text
from jid_service.backends.firecrest.listing import JobListing
from jid_service.backends.firecrest.transport import FirecrestTransport
from lute.job_status import JobStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSFER_BUDGET = 90.0
"""Seconds the transfer jobs of one stage-in or stage-out may take together; the
JID bounds the whole staging call at 120 s (``backend_call.BACKEND_TIMEOUT``)."""
POLL_INITIAL = 0.5
POLL_MAX = 5.0
"""Seconds between two looks at a transfer job: from ``POLL_INITIAL``, doubling."""
ERROR_LOG_BYTES = 64 * 1024
ERROR_LINES = 3
"""How much of a failed job's error log its staging failure quotes (last lines)."""
_TRANSIENT = frozenset({408, 424, 429})


class TransferJobs:
    """Transfer jobs of one FirecREST system, each awaited until a shared deadline."""

    def __init__(self, transport: FirecrestTransport, system: str,
                 budget: float = TRANSFER_BUDGET) -> None:
        self._transport = transport
        self._system = system
        self._listing = JobListing(transport, system, missing_lookups=0)
        self.budget = budget

    def deadline(self) -> float:
        """The event-loop time by which the transfers started now must have ended."""
        return asyncio.get_running_loop().time() + self.budget

    async def upload(self, source: Path, remote: str, deadline: float) -> None:
        """Put ``source`` at ``remote`` (an absolute path) through the staging area."""
        directory, name = remote.rsplit("/", 1)
        what = f"upload of {remote}"
        client = self._transport.client
        upload = await self._pyfirecrest(what, client.upload(
            self._system, source, directory or "/", name, blocking=False,
            transfer_method="s3"))
        if upload is None:  # pyfirecrest found it small enough to send directly
            return
        job = _job_of(upload.transfer_data)
        await self._run(what, job, deadline, self._pyfirecrest(what, upload.upload_file_to_stage()))

    async def download(self, remote: str, dest: Path, deadline: float) -> None:
        """Write the remote file ``remote`` to the local path ``dest``."""
        what = f"download of {remote}"
        client = self._transport.client
        download = await self._pyfirecrest(what, client.download(
            self._system, remote, dest, blocking=False, transfer_method="s3"))
        if download is None:  # shrank below the direct limit: pyfirecrest wrote it already
            return
        job = _job_of(download.transfer_data)
        await self._run(what, job, deadline, None)
        await self._pyfirecrest(what, download.download_file_from_stage())

    async def _run(self, what: str, job: dict[str, str], deadline: float,
                   before: Awaitable[Any] | None) -> None:
        """``before`` (the S3 leg that feeds the job), then the job; cancelled if it fails."""
        ended = False
        try:
            if before is not None:
                await before
            await self._wait(what, job, deadline)
            ended = True
        finally:
            if not ended:
                await self._cancel(job["id"])

    async def _wait(self, what: str, job: dict[str, str], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = POLL_INITIAL
        while True:
            # None: not known yet (sacct lags a new job) or a failed look-up; ask again
            state = await self._listing.lookup(job["id"])
            if state is not None and state.status.finished:
                if state.status is JobStatus.DONE:
                    return
                code = "" if state.exit_code is None else f" (exit code {state.exit_code})"
                detail = await self._error_lines(job["error_log"])
                raise StagingFailed(
                    f"{what}: FirecREST transfer job {job['id']} ended {state.raw_status}{code}"
                    + (f": {detail}" if detail else ""))
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StagingFailed(
                    f"{what}: FirecREST transfer job {job['id']} did not end within "
                    f"{self.budget:g} s and was cancelled")
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, POLL_MAX)

    async def _error_lines(self, path: str) -> str:
        if not path:
            return ""
        try:
            resp = await self._transport.call("transfer job log", self._transport.get(
                f"/filesystem/{self._system}/ops/view",
                {"path": path, "size": ERROR_LOG_BYTES, "offset": 0}), attempts=2)
            text = view_text(resp.json()) if resp.status_code == 200 else ""
        except (BackendUnavailable, ValueError):
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return "; ".join(lines[-ERROR_LINES:])[:400]

    async def _cancel(self, job_id: str) -> None:
        with contextlib.suppress(Exception):
            await self._transport.call("cancel of a transfer job", self._transport.delete(
                f"/compute/{self._system}/jobs/{job_id}"), attempts=2)
            log.info("FirecREST transfer job %s cancelled", job_id)

    async def _pyfirecrest(self, what: str, call: Awaitable[T]) -> T:
        """One pyfirecrest call, its failures as the backend's errors.

        Messages never quote a transfer's directives: they hold presigned URLs.
        """
        from firecrest.FirecrestException import FirecrestException, MultipartUploadException

        try:
            return await call
        except FirecrestException as err:
            resp = err.responses[-1] if err.responses else None
            if resp is None:
                raise StagingFailed(f"FirecREST {what} failed") from None
            if resp.status_code == 401:
                self._transport.auth.invalidate()
            if resp.status_code >= 500 or resp.status_code in _TRANSIENT | {401}:
                raise BackendUnavailable(f"FirecREST {what}: {error_text(resp)}",
                                         retry_after=10.0) from None
            raise StagingFailed(f"FirecREST {what}: {error_text(resp)}") from None
        except MultipartUploadException as err:
            detail = getattr(err, "_msg", None) or "the staging area refused the upload"
            raise StagingFailed(f"{what}: {detail}") from None
        except httpx.HTTPStatusError as err:
            raise StagingFailed(
                f"{what}: the staging area answered HTTP {err.response.status_code}") from None
        except (httpx.TransportError, OSError) as err:
            if isinstance(err, OSError) and not isinstance(err, ConnectionError):
                raise StagingFailed(f"{what}: {err.strerror or err}") from None
            raise BackendUnavailable(
                f"FirecREST {what}: cannot reach FirecREST or its staging area "
                f"({type(err).__name__})", retry_after=10.0) from None


def _job_of(info: Any) -> dict[str, str]:
    job = info.get("transferJob") if isinstance(info, dict) else None
    if not isinstance(job, dict) or job.get("jobId") is None:
        raise StagingFailed("FirecREST created a transfer but named no transfer job")
    logs = job.get("logs") if isinstance(job.get("logs"), dict) else {}
    return {"id": str(job["jobId"]), "error_log": str(logs.get("errorLog") or "")}
