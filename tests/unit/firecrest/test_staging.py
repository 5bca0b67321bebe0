"""Staging through the firecrest backend against a respx fake of FirecREST v2's filesystem API."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pytest
import respx

from jid_service.backends.base import StagingFailed
from jid_service.backends.firecrest import FirecrestBackend
from jid_service.backends.staging_files import StageInItem, StageOutItem

from .conftest import WORK_DIR, firecrest_error
from .fake_remote import OPS, FakeRemote, route_remote


@pytest.fixture
def remote(router: respx.MockRouter) -> FakeRemote:
    fake = FakeRemote()
    route_remote(router, fake)
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


async def test_unsafe_names_are_refused(
    backend: FirecrestBackend, remote: FakeRemote, tmp_path: Path,
) -> None:
    small = tmp_path / "small.dat"
    small.write_bytes(b"x")
    with pytest.raises(StagingFailed, match="cannot be sent to FirecREST"):
        await backend.stage_in(WORK_DIR, [StageInItem(small, PurePosixPath("a b'.dat"))])
    assert remote.files == {}
