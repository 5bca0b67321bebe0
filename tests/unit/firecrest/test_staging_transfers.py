"""Staging of files of 1 MiB or more through FirecREST's transfer jobs (S3 staging area).

FirecREST, its S3 bucket and its transfer jobs are the respx fake of
``fake_remote.py``, whose request and answer shapes are those of FirecREST
v2's S3 data transfer (see there); pyfirecrest makes the requests.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import httpx
import pytest
import respx

from jid_service.app import create_app
from jid_service.auth import issue_token
from jid_service.backends.base import StagingFailed
from jid_service.backends.firecrest import FirecrestBackend
from jid_service.backends.staging_files import StageInItem, StageOutItem
from jid_service.settings import JIDSettings

from .conftest import BASE, JOBS_URL, SYSTEM, WORK_DIR, StubTokenSource
from .fake_remote import FakeRemote, is_presigned, route_remote
from .test_through_app import SECRET, WS, FakeFirecrest, control_document, statuses_until

MIB = 1024 * 1024
DATA = random.Random(12).randbytes(3 * MIB)


@pytest.fixture
def remote(router: respx.MockRouter) -> FakeRemote:
    fake = FakeRemote()
    route_remote(router, fake)
    return fake


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "frames.h5"
    path.write_bytes(DATA)
    return path


async def test_3_mib_in_and_out_through_transfer_jobs(
    backend: FirecrestBackend, remote: FakeRemote, big: Path, tmp_path: Path,
) -> None:
    staged = await backend.stage_in(
        WORK_DIR, [StageInItem(big, PurePosixPath("inputs/frames.h5"))])
    target = f"{WORK_DIR}/inputs/frames.h5"
    assert remote.files[target] == DATA
    assert [(f.path, f.bytes, f.sha256, f.direction) for f in staged] == [
        (target, 3 * MIB, hashlib.sha256(DATA).hexdigest(), "in")]
    assert remote.bodies[0] == {"path": target, "transfer_directives": {
        "file_size": 3 * MIB, "transfer_method": "s3"}}
    assert remote.part_puts == 3  # through the bucket in parts of maxPartSize

    result = DATA[::-1]
    remote.files[f"{WORK_DIR}/out/result.h5"] = result
    staged = await backend.stage_out(WORK_DIR, [StageOutItem("out/*.h5", tmp_path / "res")])
    out = tmp_path / "res" / "out" / "result.h5"
    assert out.read_bytes() == result
    assert [(f.path, f.bytes, f.sha256, f.direction) for f in staged] == [
        (str(out), 3 * MIB, hashlib.sha256(result).hexdigest(), "out")]
    assert remote.bodies[1] == {"source_path": f"{WORK_DIR}/out/result.h5",
                                "transfer_directives": {"transferMethod": "s3"}}
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.h5"]
    assert remote.cancelled == []


async def test_a_failed_transfer_job_fails_the_staging(
    backend: FirecrestBackend, remote: FakeRemote, big: Path,
) -> None:
    remote.fail_transfers = "Tue Jan 21 08:01:17 UTC 2026 Download failed: part 2\n"
    with pytest.raises(StagingFailed) as failure:
        await backend.stage_in(WORK_DIR, [StageInItem(big, PurePosixPath("frames.h5"))])
    message = str(failure.value)
    assert "transfer job 9000 ended FAILED (exit code 1)" in message
    assert "Download failed: part 2" in message
    assert not is_presigned(message)
    assert f"{WORK_DIR}/frames.h5" in remote.removed


async def test_a_checksum_mismatch_after_the_transfer_fails(
    backend: FirecrestBackend, remote: FakeRemote, big: Path,
) -> None:
    remote.corrupt_transfers = True
    with pytest.raises(StagingFailed, match="SHA-256 after the transfer job"):
        await backend.stage_in(WORK_DIR, [StageInItem(big, PurePosixPath("frames.h5"))])
    assert f"{WORK_DIR}/frames.h5" not in remote.files


async def test_a_transfer_job_over_its_budget_is_cancelled(
    backend: FirecrestBackend, remote: FakeRemote, big: Path,
) -> None:
    backend._staging.transfers.budget = 0.0
    with pytest.raises(StagingFailed, match="did not end within 0 s and was cancelled"):
        await backend.stage_in(WORK_DIR, [StageInItem(big, PurePosixPath("frames.h5"))])
    assert remote.cancelled == ["9000"]


@pytest.fixture
async def staging_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FakeFirecrest,
                                                               FakeRemote, Path]]:
    configs, results = tmp_path / "configs", tmp_path / "staging"
    configs.mkdir()
    results.mkdir()
    (configs / "test.yaml").write_text("title: test\n")
    settings = JIDSettings(
        backend="firecrest", auth_secret=SECRET, db_url=f"sqlite:///{tmp_path / 'jid.db'}",
        state_dir=tmp_path / "state", allowed_config_roots=[configs], staging_roots=[results],
        poll_interval=0.05, firecrest_system=SYSTEM, firecrest_work_dir=WORK_DIR,
        firecrest_launcher="/opt/lute/bin/lute-run-task")
    backend = FirecrestBackend(
        firecrest_url=BASE, system=SYSTEM, work_dir=WORK_DIR, token_source=StubTokenSource(),
        launcher="/opt/lute/bin/lute-run-task", max_attempts=2, backoff_initial=0.001,
        backoff_max=0.002, request_timeout=5.0)
    fake, remote = FakeFirecrest(), FakeRemote()
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        route_remote(router, remote)  # first: its transfer-job routes before the jobs' ones
        router.post(JOBS_URL).mock(side_effect=fake.submit)
        router.get(JOBS_URL).mock(side_effect=fake.listing)
        app = create_app(settings, backend=backend)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://jid") as c:
                c.headers["Authorization"] = "Bearer " + issue_token(SECRET, "alice", ["exp1"], 600)
                yield c, fake, remote, configs


async def test_a_failed_stage_out_transfer_ends_the_step_failed_with_the_reason(
    staging_client: tuple[httpx.AsyncClient, FakeFirecrest, FakeRemote, Path], tmp_path: Path,
) -> None:
    client, fake, remote, configs = staging_client
    doc = control_document(configs)
    doc["def"]["stage_out"] = [{"source": "*.h5", "target": str(tmp_path / "staging" / "out")}]
    started = (await client.post(f"{WS}/exp1/start_job", json=doc)).json()["value"]
    remote.files[f"{WORK_DIR}/result.h5"] = DATA
    remote.fail_transfers = "upload_failed_part_2"
    fake.set_state(started["tool_id"], "COMPLETED")
    job = await statuses_until(client, started, "FAILED")
    assert (job["status"], job["raw_status"]) == ("FAILED", "STAGE_OUT_FAILED"), job
    assert "transfer job 9000 ended FAILED (exit code 1): upload_failed_part_2" in (
        job["staging_error"])
    assert not list((tmp_path / "staging").rglob("*.h5*"))
