"""File staging through the JID's app with the local backend (shared file system)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jid_service.backends.staging_files import matching, write_atomically
from jid_service.settings import JIDSettings

from .conftest import running_app
from .test_api import BASE, start, wait_final


@pytest.fixture
def staging_root(tmp_path: Path) -> Path:
    root = tmp_path / "staging"
    (root / "inputs").mkdir(parents=True)
    (root / "inputs" / "calib.dat").write_bytes(b"calibration \x00\x01 data")
    return root


@pytest.fixture
async def staging_client(settings: JIDSettings,
                         staging_root: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings.model_copy(update={"staging_roots": [staging_root]})
    async with running_app(settings) as c:
        yield c


def staged_doc(doc: Callable[..., dict[str, Any]], **definition: Any) -> dict[str, Any]:
    return doc(definition=definition)


async def test_stage_in_and_out_for_one_step(
    staging_client: httpx.AsyncClient, doc: Callable[..., dict[str, Any]],
    auth: dict[str, str], staging_root: Path, config_root: Path,
) -> None:
    (config_root / "out").mkdir()
    (config_root / "out" / "peaks.txt").write_text("42 peaks\n")
    (config_root / "out" / "skip.log").write_text("not matched\n")
    control = staged_doc(
        doc,
        stage_in=[{"source": str(staging_root / "inputs" / "calib.dat"),
                   "target": "inputs/calib.dat"}],
        stage_out=[{"source": "out/*.txt", "target": str(staging_root / "results")}],
    )
    job = await start(staging_client, control, auth)
    copied = config_root / "inputs" / "calib.dat"
    assert copied.read_bytes() == b"calibration \x00\x01 data"
    assert job["staged"] == [{
        "path": str(copied), "bytes": 19, "direction": "in",
        "sha256": hashlib.sha256(b"calibration \x00\x01 data").hexdigest(),
    }]
    job = await wait_final(staging_client, job, auth)
    assert job["status"] == "DONE", job
    out = staging_root / "results" / "out" / "peaks.txt"
    assert out.read_text() == "42 peaks\n"
    assert not (staging_root / "results" / "out" / "skip.log").exists()
    assert job["staged"][1] == {"path": str(out), "bytes": 9, "direction": "out",
                                "sha256": hashlib.sha256(b"42 peaks\n").hexdigest()}
    assert job.get("staging_error") is None
    # the returned document is accepted back (the operator sends it to /wait and job_log)
    r = await staging_client.post(f"{BASE}/job_statuses", json=[job], headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["value"][0]["staged"] == job["staged"]


async def test_stage_out_matching_nothing_fails_the_step(
    staging_client: httpx.AsyncClient, doc: Callable[..., dict[str, Any]],
    auth: dict[str, str], staging_root: Path,
) -> None:
    control = staged_doc(
        doc, stage_out=[{"source": "out/*.h5", "target": str(staging_root / "results")}])
    job = await wait_final(staging_client, await start(staging_client, control, auth), auth)
    assert job["status"] == "FAILED"
    assert job["raw_status"] == "STAGE_OUT_FAILED"
    assert "'out/*.h5' matched no file" in job["staging_error"]
    assert job["exit_code"] == 0
    assert not (staging_root / "results").exists()


@pytest.mark.parametrize(("definition", "field"), [
    ({"stage_in": [{"source": "/etc/passwd", "target": "x"}]}, "def.stage_in[0].source"),
    ({"stage_in": [{"source": "relative.dat", "target": "x"}]}, "def.stage_in[0].source"),
    ({"stage_in": [{"source": "{root}/inputs/../inputs/calib.dat", "target": "x"}]},
     "def.stage_in[0].source"),
    ({"stage_in": [{"source": "{root}/inputs/calib.dat", "target": "../x"}]},
     "def.stage_in[0].target"),
    ({"stage_in": [{"source": "{root}/inputs/calib.dat", "target": "/abs"}]},
     "def.stage_in[0].target"),
    ({"stage_out": [{"source": "../*", "target": "{root}/out"}]}, "def.stage_out[0].source"),
    ({"stage_out": [{"source": "*", "target": "/tmp"}]}, "def.stage_out[0].target"),
])
async def test_bad_staging_fields_are_422_naming_the_field(
    staging_client: httpx.AsyncClient, doc: Callable[..., dict[str, Any]],
    auth: dict[str, str], staging_root: Path, definition: dict[str, Any], field: str,
) -> None:
    for items in definition.values():
        for item in items:
            for key, value in item.items():
                item[key] = value.replace("{root}", str(staging_root))
    control = staged_doc(doc, **definition)
    r = await staging_client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]
    r = await staging_client.get(f"{BASE}/jobs", params={"experiment": "exp1"}, headers=auth)
    assert r.json()["value"] == []


async def test_stage_in_through_a_symlink_out_of_the_work_dir_submits_nothing(
    staging_client: httpx.AsyncClient, doc: Callable[..., dict[str, Any]],
    auth: dict[str, str], staging_root: Path, config_root: Path, tmp_path: Path,
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (config_root / "escape").symlink_to(outside)
    control = staged_doc(doc, stage_in=[{"source": str(staging_root / "inputs" / "calib.dat"),
                                         "target": "escape/calib.dat"}])
    r = await staging_client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
    assert r.status_code == 422, r.text
    assert "def.stage_in: staging failed" in r.json()["error"]
    assert "outside the work dir" in r.json()["error"]
    assert list(outside.iterdir()) == []
    r = await staging_client.get(f"{BASE}/jobs", params={"experiment": "exp1"}, headers=auth)
    assert r.json()["value"] == []


async def test_staging_without_staging_roots_is_refused(
    client: httpx.AsyncClient, doc: Callable[..., dict[str, Any]], auth: dict[str, str],
) -> None:
    control = staged_doc(doc, stage_out=[{"source": "*", "target": "/srv/out"}])
    r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
    assert r.status_code == 422
    assert "no staging_roots" in r.json()["error"]


async def test_documents_without_staging_keep_their_shape(
    client: httpx.AsyncClient, doc: Callable[..., dict[str, Any]], auth: dict[str, str],
) -> None:
    job = await start(client, doc(), auth)
    assert "staged" not in job and "stage_in" not in job["def"]


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def chunks() -> Any:
        yield b"first half"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(tmp_path / "out.dat", chunks())
    assert list(tmp_path.iterdir()) == []


def test_glob_semantics() -> None:
    names = ["a.txt", "out/b.txt", "out/deep/c.txt", "out/d.log"]
    assert matching(names, "*.txt") == ["a.txt"]
    assert matching(names, "out/*.txt") == ["out/b.txt"]
    assert matching(names, "out/**/*.txt") == ["out/b.txt", "out/deep/c.txt"]
    assert matching(names, "**") == sorted(names)
