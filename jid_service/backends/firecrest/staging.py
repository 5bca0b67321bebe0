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

Files at or above pyfirecrest's direct-transfer size (1 MiB) would need
FirecREST's transfer jobs (S3 staging); they are refused with a message
saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from jid_service.backends.base import StagingFailed
from jid_service.backends.firecrest.decode import error_text
from jid_service.backends.firecrest.script import SAFE_PATH
from jid_service.backends.firecrest.transport import FirecrestTransport
from jid_service.backends.staging_files import (
    StageInItem,
    StageOutItem,
    matching,
    sha256_bytes,
    write_atomically,
)
from jid_service.models import StagedFile

DIRECT_TRANSFER_MAX = 1024 * 1024
"""Bytes below which FirecREST moves a file in one request (pyfirecrest's
``MAX_DIRECT_UPLOAD_SIZE``); larger ones need a transfer job."""


def _remote_path(work_dir: str, relative: PurePosixPath | str) -> str:
    path = f"{work_dir.rstrip('/')}/{relative}"
    if not SAFE_PATH.fullmatch(path):
        raise StagingFailed(
            f"{relative!s} cannot be sent to FirecREST: only letters, digits and _.@+=:/- "
            "are allowed in a remote path"
        )
    return path


def _too_large(what: str, size: int) -> StagingFailed:
    return StagingFailed(
        f"{what} is {size} bytes; files of {DIRECT_TRANSFER_MAX} bytes or more need "
        "FirecREST transfer jobs, which this JID does not run"
    )


class FirecrestStaging:
    """Moves a job's files through one FirecREST system's filesystem API."""

    def __init__(self, transport: FirecrestTransport, system: str) -> None:
        self._transport = transport
        self._ops = f"/filesystem/{system}/ops"

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

    async def stage_in(self, work_dir: str, items: Sequence[StageInItem]) -> list[StagedFile]:
        """Upload each input into ``work_dir`` on the remote system; what moved."""
        staged = []
        for item in items:
            remote = _remote_path(work_dir, item.target)
            try:
                content = await asyncio.to_thread(item.source.read_bytes)
            except OSError as err:
                raise StagingFailed(f"{item.source}: {err.strerror or err}") from err
            if len(content) >= DIRECT_TRANSFER_MAX:
                raise _too_large(str(item.source), len(content))
            digest = sha256_bytes(content)
            directory, name = remote.rsplit("/", 1)
            resp = await self._transport.call("mkdir", self._transport.post(
                f"{self._ops}/mkdir", {"sourcePath": directory or "/", "parent": True}))
            if resp.status_code not in (200, 201, 409):
                raise StagingFailed(f"FirecREST mkdir {directory}: {error_text(resp)}")
            try:
                resp = await self._transport.call("upload", self._transport.upload(
                    f"{self._ops}/upload", {"path": directory or "/"}, name, content))
                await self._expect(f"upload of {remote}", resp, 204)
                remote_digest = await self._checksum(remote)
                if remote_digest != digest:
                    raise StagingFailed(
                        f"{remote}: SHA-256 after upload is {remote_digest or 'unknown'}, "
                        f"expected {digest}")
            except BaseException:
                await self._remove(remote)
                raise
            staged.append(StagedFile(path=remote, bytes=len(content), sha256=digest,
                                     direction="in"))
        return staged

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
        """Download the files each glob matches in the remote ``work_dir``; what moved."""
        files = await self._listing(work_dir)
        staged = []
        for item in items:
            found = matching(files, item.pattern)
            if not found:
                raise StagingFailed(f"stage_out {item.pattern!r} matched no file in {work_dir}")
            for name in found:
                remote = _remote_path(work_dir, name)
                if files[name] >= DIRECT_TRANSFER_MAX:
                    raise _too_large(remote, files[name])
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
                dest = item.target / name
                try:
                    size, _ = await asyncio.to_thread(write_atomically, dest, [content])
                except OSError as err:
                    raise StagingFailed(f"{remote} -> {dest}: {err.strerror or err}") from err
                staged.append(StagedFile(path=str(Path(dest)), bytes=size, sha256=digest,
                                         direction="out"))
        return staged
