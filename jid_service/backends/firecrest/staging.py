"""Staging through FirecREST's filesystem API (the shapes pyfirecrest v2 uses).

In: ``POST /filesystem/{system}/ops/mkdir`` of the target's directory, then
``POST /filesystem/{system}/ops/upload?path=<dir>`` (multipart field ``file``,
204), then ``GET .../ops/checksum?path=`` compared with the local SHA-256; a
failed or mismatched upload is removed with ``DELETE .../ops/rm?path=``, so
the job never starts beside half a file (FirecREST's only rename is a Slurm
transfer job, too slow to stage each small file through).
Out: ``GET .../ops/ls?path=<work dir>&recursive=true`` matched against the
globs, ``GET .../ops/download?path=`` (raw bytes), checked against
``ops/checksum`` and written locally through a temporary file and a rename.

Files at or above pyfirecrest's direct-transfer size (``MAX_DIRECT_UPLOAD_SIZE``,
1 MiB) go through FirecREST's transfer jobs and its S3 staging area
(``transfer_jobs.py``), all of one call at once, with the same checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from jid_service.backends.base import StagingFailed
from jid_service.backends.firecrest.decode import error_text
from jid_service.backends.firecrest.script import SAFE_PATH
from jid_service.backends.firecrest.transfer_jobs import TRANSFER_BUDGET, TransferJobs
from jid_service.backends.firecrest.transport import FirecrestTransport
from jid_service.backends.staging_files import (
    StageInItem,
    StageOutItem,
    matching,
    sha256_bytes,
    sha256_file,
    temporary_sibling,
    write_atomically,
)
from jid_service.models import StagedFile

DIRECT_TRANSFER_MAX = 1024 * 1024
"""Bytes below which FirecREST moves a file in one request (pyfirecrest's
``MAX_DIRECT_UPLOAD_SIZE``); larger ones go through a transfer job."""


def _remote_path(work_dir: str, relative: PurePosixPath | str) -> str:
    path = f"{work_dir.rstrip('/')}/{relative}"
    if not SAFE_PATH.fullmatch(path):
        raise StagingFailed(
            f"{relative!s} cannot be sent to FirecREST: only letters, digits and _.@+=:/- "
            "are allowed in a remote path"
        )
    return path


def _first_failure(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


class FirecrestStaging:
    """Moves a job's files through one FirecREST system's filesystem API."""

    def __init__(self, transport: FirecrestTransport, system: str,
                 transfer_budget: float = TRANSFER_BUDGET) -> None:
        self._transport = transport
        self._ops = f"/filesystem/{system}/ops"
        self.transfers = TransferJobs(transport, system, transfer_budget)

    async def _expect(self, what: str, resp: httpx.Response, status: int) -> httpx.Response:
        if resp.status_code != status:
            raise StagingFailed(f"FirecREST {what}: {error_text(resp)}")
        return resp

    async def _checksum(self, path: str) -> str:
        resp = await self._transport.call(
            "checksum", self._transport.get(f"{self._ops}/checksum", {"path": path}))
        await self._expect(f"checksum of {path}", resp, 200)
        output: dict[str, Any] = resp.json().get("output") or {}
        return str(output.get("checksum", "")).lower()

    async def _remove(self, path: str) -> None:
        try:
            await self._transport.call(
                "rm", self._transport.delete_with(f"{self._ops}/rm", {"path": path}),
                attempts=2)
        except Exception:
            return

    async def _mkdir(self, directory: str) -> None:
        resp = await self._transport.call("mkdir", self._transport.post(
            f"{self._ops}/mkdir", {"sourcePath": directory or "/", "parent": True}))
        if resp.status_code not in (200, 201, 409):
            raise StagingFailed(f"FirecREST mkdir {directory}: {error_text(resp)}")

    async def _verify(self, remote: str, digest: str, after: str) -> None:
        remote_digest = await self._checksum(remote)
        if remote_digest != digest:
            raise StagingFailed(
                f"{remote}: SHA-256 {after} is {remote_digest or 'unknown'}, expected {digest}")

    async def stage_in(self, work_dir: str, items: Sequence[StageInItem]) -> list[StagedFile]:
        """Upload each input into ``work_dir`` on the remote system; what moved.

        Small files go one by one; the large ones then through transfer jobs at once.
        """
        planned = []
        for item in items:
            remote = _remote_path(work_dir, item.target)
            try:
                size = (await asyncio.to_thread(item.source.stat)).st_size
            except OSError as err:
                raise StagingFailed(f"{item.source}: {err.strerror or err}") from err
            planned.append((item, remote, size))
        for directory in sorted({remote.rsplit("/", 1)[0] for _, remote, _ in planned}):
            await self._mkdir(directory)
        staged: dict[str, StagedFile] = {}
        for item, remote, size in planned:
            if size < DIRECT_TRANSFER_MAX:
                staged[remote] = await self._upload_direct(item, remote)
        deadline = self.transfers.deadline()
        large = [(item, remote) for item, remote, size in planned if size >= DIRECT_TRANSFER_MAX]
        results = await asyncio.gather(
            *(self._upload_large(item, remote, deadline) for item, remote in large),
            return_exceptions=True)
        _first_failure(results)
        staged.update((f.path, f) for f in results if isinstance(f, StagedFile))
        return [staged[remote] for _, remote, _ in planned]

    async def _upload_direct(self, item: StageInItem, remote: str) -> StagedFile:
        try:
            content = await asyncio.to_thread(item.source.read_bytes)
        except OSError as err:
            raise StagingFailed(f"{item.source}: {err.strerror or err}") from err
        digest = sha256_bytes(content)
        directory, name = remote.rsplit("/", 1)
        try:
            resp = await self._transport.call("upload", self._transport.upload(
                f"{self._ops}/upload", {"path": directory or "/"}, name, content))
            await self._expect(f"upload of {remote}", resp, 204)
            await self._verify(remote, digest, "after upload")
        except BaseException:
            await self._remove(remote)
            raise
        return StagedFile(path=remote, bytes=len(content), sha256=digest, direction="in")

    async def _upload_large(self, item: StageInItem, remote: str, deadline: float) -> StagedFile:
        try:
            size, digest = await asyncio.to_thread(sha256_file, item.source)
        except OSError as err:
            raise StagingFailed(f"{item.source}: {err.strerror or err}") from err
        try:
            await self.transfers.upload(item.source, remote, deadline)
            await self._verify(remote, digest, "after the transfer job")
        except BaseException:
            await self._remove(remote)
            raise
        return StagedFile(path=remote, bytes=size, sha256=digest, direction="in")

    async def _listing(self, work_dir: str) -> dict[str, int]:
        resp = await self._transport.call("ls", self._transport.get(
            f"{self._ops}/ls", {"path": work_dir, "recursive": True, "showHidden": False}))
        await self._expect(f"listing of {work_dir}", resp, 200)
        files = {}
        for entry in resp.json().get("output") or []:
            # regular files only: a symlink could lead out of the work dir
            if isinstance(entry, dict) and entry.get("type") == "-":
                files[str(entry.get("name"))] = int(entry.get("size") or 0)
        return files

    async def stage_out(self, work_dir: str, items: Sequence[StageOutItem]) -> list[StagedFile]:
        """Download the files each glob matches in the remote ``work_dir``; what moved.

        Small files go one by one; the large ones then through transfer jobs at once.
        """
        files = await self._listing(work_dir)
        planned = []
        for item in items:
            found = matching(files, item.pattern)
            if not found:
                raise StagingFailed(f"stage_out {item.pattern!r} matched no file in {work_dir}")
            planned += [(_remote_path(work_dir, name), item.target / name, files[name])
                        for name in found]
        staged: dict[str, StagedFile] = {}
        for remote, dest, size in planned:
            if size < DIRECT_TRANSFER_MAX:
                staged[remote] = await self._download_direct(remote, dest)
        deadline = self.transfers.deadline()
        large = [(remote, dest, size) for remote, dest, size in planned
                 if size >= DIRECT_TRANSFER_MAX]
        results = await asyncio.gather(
            *(self._download_large(remote, dest, size, deadline) for remote, dest, size in large),
            return_exceptions=True)
        _first_failure(results)
        staged.update((remote, f) for (remote, _, _), f in zip(large, results, strict=True)
                      if isinstance(f, StagedFile))
        return [staged[remote] for remote, _, _ in planned]

    async def _download_direct(self, remote: str, dest: Path) -> StagedFile:
        resp = await self._transport.call("download", self._transport.get(
            f"{self._ops}/download", {"path": remote}))
        await self._expect(f"download of {remote}", resp, 200)
        content = resp.content
        digest = sha256_bytes(content)
        remote_digest = await self._checksum(remote)
        if remote_digest != digest:
            raise StagingFailed(
                f"{remote}: SHA-256 of the download is {digest}, the remote file's "
                f"is {remote_digest or 'unknown'}")
        try:
            size, _ = await asyncio.to_thread(write_atomically, dest, [content])
        except OSError as err:
            raise StagingFailed(f"{remote} -> {dest}: {err.strerror or err}") from err
        return StagedFile(path=str(Path(dest)), bytes=size, sha256=digest, direction="out")

    async def _download_large(self, remote: str, dest: Path, listed: int,
                              deadline: float) -> StagedFile:
        tmp = temporary_sibling(dest)
        try:
            try:
                await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
            except OSError as err:
                raise StagingFailed(f"{remote} -> {dest}: {err.strerror or err}") from err
            await self.transfers.download(remote, tmp, deadline)
            size, digest = await asyncio.to_thread(sha256_file, tmp)
            if size != listed:
                raise StagingFailed(
                    f"{remote}: {size} bytes arrived, the remote file has {listed}")
            remote_digest = await self._checksum(remote)
            if remote_digest != digest:
                raise StagingFailed(
                    f"{remote}: SHA-256 of the download is {digest}, the remote file's "
                    f"is {remote_digest or 'unknown'}")
            await asyncio.to_thread(os.replace, tmp, dest)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return StagedFile(path=str(dest), bytes=size, sha256=digest, direction="out")
