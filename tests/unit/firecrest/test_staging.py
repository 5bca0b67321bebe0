"""Staging through the firecrest backend against a respx fake of FirecREST v2's filesystem API."""

from __future__ import annotations

import hashlib
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path, PurePosixPath

import httpx
import pytest
import respx

from jid_service.backends.base import StagingFailed
from jid_service.backends.firecrest import FirecrestBackend
from jid_service.backends.staging_files import StageInItem, StageOutItem

from .conftest import SYSTEM, WORK_DIR, firecrest_error

OPS = f"/filesystem/{SYSTEM}/ops"


class FakeRemote:
    """A remote file system behind mkdir/upload/checksum/ls/download/rm as FirecREST answers."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {WORK_DIR}
        self.removed: list[str] = []
        self.corrupt_uploads = False

    def mkdir(self, request: httpx.Request) -> httpx.Response:
        body = httpx.Response(200, content=request.content).json()
        self.dirs.add(body["sourcePath"])
        return httpx.Response(201, json={"output": {"name": body["sourcePath"], "type": "d"}})

    def upload(self, request: httpx.Request) -> httpx.Response:
        directory = request.url.params["path"]
        if directory not in self.dirs:
            return firecrest_error(404, f"No such file or directory: {directory}")
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + request.content)
        part = next(message.iter_parts())
        data = part.get_payload(decode=True)
        if self.corrupt_uploads:
            data = data[:-1]  # the SSH channel dropped the last byte
        self.files[f"{directory}/{part.get_filename()}"] = data
        return httpx.Response(204)

    def checksum(self, request: httpx.Request) -> httpx.Response:
        data = self.files.get(request.url.params["path"])
        if data is None:
            return firecrest_error(404, "No such file or directory")
        return httpx.Response(200, json={"output": {
            "algorithm": "SHA256", "checksum": hashlib.sha256(data).hexdigest()}})

    def ls(self, request: httpx.Request) -> httpx.Response:
        root = request.url.params["path"].rstrip("/") + "/"
        assert request.url.params["recursive"] == "true"
        output = [{"name": path[len(root):], "type": "-", "linkTarget": None, "user": "alice",
                   "group": "alice", "permissions": "rw-r--r--",
                   "lastModified": "2026-01-21T08:01:17", "size": str(len(data))}
                  for path, data in sorted(self.files.items()) if path.startswith(root)]
        output.append({"name": "link.txt", "type": "l", "linkTarget": "/etc/passwd",
                       "user": "alice", "group": "alice", "permissions": "rwxrwxrwx",
                       "lastModified": "2026-01-21T08:01:17", "size": "11"})
        return httpx.Response(200, json={"output": output})

    def download(self, request: httpx.Request) -> httpx.Response:
        data = self.files.get(request.url.params["path"])
        if data is None:
            return firecrest_error(404, "No such file or directory")
        return httpx.Response(200, content=data,
                              headers={"Content-Type": "application/octet-stream"})

    def rm(self, request: httpx.Request) -> httpx.Response:
        path = request.url.params["path"]
        self.removed.append(path)
        self.files.pop(path, None)
        return httpx.Response(204)


@pytest.fixture
def remote(router: respx.MockRouter) -> FakeRemote:
    fake = FakeRemote()
    router.post(f"{OPS}/mkdir").mock(side_effect=fake.mkdir)
    router.post(f"{OPS}/upload").mock(side_effect=fake.upload)
    router.get(f"{OPS}/checksum").mock(side_effect=fake.checksum)
    router.get(f"{OPS}/ls").mock(side_effect=fake.ls)
    router.get(f"{OPS}/download").mock(side_effect=fake.download)
    router.delete(f"{OPS}/rm").mock(side_effect=fake.rm)
    return fake


async def test_stage_in_then_out_for_one_step(backend: FirecrestBackend, remote: FakeRemote,
                                              tmp_path: Path) -> None:
    source = tmp_path / "calib.dat"
    source.write_bytes(b"\x00calibration\xff")
    work_dir = backend.staging_work_dir(Path("/ignored/config.yaml"))
    assert work_dir == WORK_DIR

    staged = await backend.stage_in(
        work_dir, [StageInItem(source, PurePosixPath("inputs/calib.dat"))])
    assert remote.files[f"{WORK_DIR}/inputs/calib.dat"] == b"\x00calibration\xff"
    assert [(f.path, f.bytes, f.sha256, f.direction) for f in staged] == [
        (f"{WORK_DIR}/inputs/calib.dat", 13,
         hashlib.sha256(b"\x00calibration\xff").hexdigest(), "in")]

    remote.files[f"{WORK_DIR}/out/peaks.txt"] = "42 pics ✓\n".encode()
    remote.files[f"{WORK_DIR}/out/run.log"] = b"not matched\n"
    staged = await backend.stage_out(work_dir, [StageOutItem("out/*.txt", tmp_path / "res")])
    out = tmp_path / "res" / "out" / "peaks.txt"
    assert out.read_bytes() == "42 pics ✓\n".encode()
    assert [(f.path, f.bytes, f.direction) for f in staged] == [(str(out), 12, "out")]
    assert not (tmp_path / "res" / "out" / "run.log").exists()


async def test_symlinks_are_not_staged_out(backend: FirecrestBackend, remote: FakeRemote,
                                           tmp_path: Path) -> None:
    # a symlink could lead anywhere: the listing's "l" entries are never downloaded
    with pytest.raises(StagingFailed, match=r"'link\.txt' matched no file"):
        await backend.stage_out(WORK_DIR, [StageOutItem("link.txt", tmp_path / "res")])


async def test_a_corrupted_upload_is_removed_and_fails(
    backend: FirecrestBackend, remote: FakeRemote, tmp_path: Path,
) -> None:
    source = tmp_path / "calib.dat"
    source.write_bytes(b"calibration")
    remote.corrupt_uploads = True
    with pytest.raises(StagingFailed, match="SHA-256 after upload"):
        await backend.stage_in(WORK_DIR, [StageInItem(source, PurePosixPath("calib.dat"))])
    assert remote.removed == [f"{WORK_DIR}/calib.dat"]
    assert f"{WORK_DIR}/calib.dat" not in remote.files


async def test_a_refused_download_leaves_no_local_file(
    backend: FirecrestBackend, remote: FakeRemote, router: respx.MockRouter, tmp_path: Path,
) -> None:
    remote.files[f"{WORK_DIR}/out.h5"] = b"data"
    router.get(f"{OPS}/download").mock(
        return_value=firecrest_error(403, "Permission denied", ["cat: out.h5: Permission denied"]))
    with pytest.raises(StagingFailed, match=r"download of .*Permission denied"):
        await backend.stage_out(WORK_DIR, [StageOutItem("*.h5", tmp_path / "res")])
    assert not (tmp_path / "res").exists() or list((tmp_path / "res").rglob("*")) == []


async def test_large_files_and_unsafe_names_are_refused(
    backend: FirecrestBackend, remote: FakeRemote, tmp_path: Path,
) -> None:
    big = tmp_path / "big.dat"
    big.write_bytes(b"x" * (1024 * 1024))
    with pytest.raises(StagingFailed, match="transfer jobs"):
        await backend.stage_in(WORK_DIR, [StageInItem(big, PurePosixPath("big.dat"))])
    small = tmp_path / "small.dat"
    small.write_bytes(b"x")
    with pytest.raises(StagingFailed, match="cannot be sent to FirecREST"):
        await backend.stage_in(WORK_DIR, [StageInItem(small, PurePosixPath("a b'.dat"))])
    assert remote.files == {}
