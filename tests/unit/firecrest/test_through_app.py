"""The JID app (ASGI transport) with the firecrest backend against a respx-mocked FirecREST.

FirecREST is simulated by a small stateful fake behind respx routes: submitted
jobs are kept in a dict whose states the tests move along, exactly as the
scheduler behind FirecREST would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from jid_service.app import create_app
from jid_service.auth import issue_token
from jid_service.backends.firecrest import FirecrestBackend
from jid_service.settings import JIDSettings

from .conftest import (
    BASE,
    CHANNEL_CLOSED,
    JOBS_URL,
    SYSTEM,
    WORK_DIR,
    FakeFiles,
    StubTokenSource,
    firecrest_error,
    listed_job,
    route_files,
    sbatch_failure,
)

SECRET = "firecrest-app-test-secret-0123456789"
WS = "/jid/ws"


class FakeFirecrest:
    """Jobs as FirecREST v2 lists them; the tests set their states."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        self.files = FakeFiles()
        self.logs = self.files.files
        self.next_id = 100
        self.listing_down = False
        self.reject_submissions = False
        self.ssh_timeout_after_submit = False
        self.listing_calls = 0
        self.submit_calls = 0

    def submit(self, request: httpx.Request) -> httpx.Response:
        self.submit_calls += 1
        if self.reject_submissions:
            # the real server answers every failed sbatch with a 500
            return sbatch_failure(
                "sbatch: error: invalid partition specified: debug",
                "sbatch: error: Batch job submission failed: Invalid partition name specified",
            )
        job = json.loads(request.content)["job"]
        job_id = str(self.next_id)
        self.next_id += 1
        self.jobs[job_id] = listed_job(job_id, "PENDING", name=job["name"])
        self.scripts[job_id] = job["script"]
        self.outputs[job_id] = job["standardOutput"]
        self.logs[job["standardOutput"].replace("%j", job_id)] = b""
        if self.ssh_timeout_after_submit:
            # FirecREST's command timeout cut the SSH channel after Slurm queued the job
            return firecrest_error(500, CHANNEL_CLOSED)
        return httpx.Response(201, json={"jobId": job_id})

    def listing(self, request: httpx.Request) -> httpx.Response:
        self.listing_calls += 1
        if self.listing_down:
            return firecrest_error(500, "Error executing Slurm command.",
                                   caused_by=["Slurm accounting storage is disabled"])
        return httpx.Response(200, json={"jobs": list(self.jobs.values())})

    def metadata(self, request: httpx.Request, job_id: str) -> httpx.Response:
        return httpx.Response(200, json={"jobs": [{
            "jobId": job_id, "script": self.scripts[job_id], "standardInput": "/dev/null",
            "standardOutput": self.outputs[job_id], "standardError": self.outputs[job_id]}]})

    def cancel(self, request: httpx.Request, job_id: str) -> httpx.Response:
        self.set_state(job_id, "CANCELLED by 1234", exit_code=0, signal=15)
        return httpx.Response(204)

    def set_state(self, job_id: str, state: str, exit_code: int = 0, signal: int = 0) -> None:
        status = self.jobs[job_id]["status"]
        status.update(state=state, exitCode=exit_code, interruptSignal=signal)


@pytest.fixture
def fake() -> FakeFirecrest:
    return FakeFirecrest()


@pytest.fixture
def config_root(tmp_path: Path) -> Path:
    root = tmp_path / "configs"
    root.mkdir()
    (root / "test.yaml").write_text("title: test\n")
    return root


@contextlib.asynccontextmanager
async def running_jid(
    tmp_path: Path, config_root: Path, fake: FakeFirecrest
) -> AsyncIterator[httpx.AsyncClient]:
    """A JID over ``fake``; entering it again with the same ``tmp_path`` is a restart."""
    settings = JIDSettings(
        backend="firecrest",
        auth_secret=SECRET,
        db_url=f"sqlite:///{tmp_path / 'jid.db'}",
        state_dir=tmp_path / "state",
        allowed_config_roots=[config_root],
        poll_interval=0.05,
        kill_wait_seconds=10,
        firecrest_system=SYSTEM,
        firecrest_work_dir=WORK_DIR,
        firecrest_launcher="/opt/lute/bin/lute-run-task",
    )
    backend = FirecrestBackend(
        firecrest_url=BASE,
        system=SYSTEM,
        work_dir=WORK_DIR,
        token_source=StubTokenSource(),
        launcher="/opt/lute/bin/lute-run-task",
        max_attempts=2,
        backoff_initial=0.001,
        backoff_max=0.002,
        request_timeout=5.0,
    )
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post(JOBS_URL).mock(side_effect=fake.submit)
        router.get(JOBS_URL).mock(side_effect=fake.listing)
        router.delete(url__regex=rf"{JOBS_URL}/(?P<job_id>\w+)$").mock(side_effect=fake.cancel)
        router.get(url__regex=rf"{JOBS_URL}/(?P<job_id>\w+)/metadata$").mock(
            side_effect=fake.metadata)
        route_files(router, fake.files)
        app = create_app(settings, backend=backend)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://jid") as c:
                c.headers["Authorization"] = "Bearer " + issue_token(SECRET, "alice", ["exp1"], 600)
                c.app = app  # type: ignore[attr-defined]
                yield c


@pytest.fixture
async def client(
    tmp_path: Path, config_root: Path, fake: FakeFirecrest
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_jid(tmp_path, config_root, fake) as c:
        yield c


def control_document(config_root: Path, **changes: Any) -> dict[str, Any]:
    """A control document shaped like the one LUTE's JIDSlurmOperator sends."""
    settings_launcher = JIDSettings(auth_secret=SECRET).launcher
    doc: dict[str, Any] = {
        "_id": str(uuid.uuid4()),
        "arp_root_job_id": "root-1",
        "experiment": "exp1",
        "run_num": "12",
        "user": "alice",
        "status": "",
        "tool_id": "",
        "def_id": str(uuid.uuid4()),
        "def": {
            "_id": str(uuid.uuid4()),
            "name": "Tester",
            "executable": str(settings_launcher),
            "trigger": "MANUAL",
            "location": "S3DF",
            "parameters": f"--taskname Tester --config {config_root / 'test.yaml'} "
            "--partition=debug --ntasks=1",
            "run_as_user": "alice",
        },
    }
    doc.update(changes)
    return doc


async def statuses_until(
    client: httpx.AsyncClient,
    doc: dict[str, Any],
    wanted: str,
    timeout: float = 15.0,
    recovering: bool = False,
) -> dict[str, Any]:
    """Poll job_statuses like LUTE's operator does until the job shows ``wanted``.

    ``recovering``: 503 answers (backend still marked down) are waited out too.
    """
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.post(f"{WS}/job_statuses", json=[doc])
        if recovering and resp.status_code == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            continue
        assert resp.status_code == 200, resp.text
        current = resp.json()["value"][0]
        if current["status"] == wanted or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)


async def test_lute_operator_sequence_over_firecrest(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path
):
    doc = control_document(config_root)

    resp = await client.post(f"{WS}/exp1/start_job", json=doc)
    assert resp.status_code == 200, resp.text
    started = resp.json()["value"]
    tool_id = started["tool_id"]
    assert tool_id in fake.jobs
    assert "#SBATCH --partition=debug" in fake.scripts[tool_id]
    assert "#SBATCH --ntasks=1" in fake.scripts[tool_id]
    assert fake.scripts[tool_id].rstrip().endswith(f"-c {config_root / 'test.yaml'} -t Tester")

    fake.set_state(tool_id, "RUNNING")
    assert (await statuses_until(client, started, "RUNNING"))["status"] == "RUNNING"

    (log_path,) = fake.logs
    fake.logs[log_path] = b"Tester: starting\nTester: done\n"
    fake.set_state(tool_id, "COMPLETED", exit_code=0)
    done = await statuses_until(client, started, "DONE")
    assert (done["status"], done["raw_status"], done["exit_code"]) == ("DONE", "COMPLETED", 0)

    resp = await client.post(f"{WS}/exp1/job_log_file", json=done)
    assert resp.status_code == 200, resp.text
    assert resp.json()["value"] == "Tester: starting\nTester: done\n"

    # a repeated start_job with the same _id submits nothing new
    again = await client.post(f"{WS}/exp1/start_job", json=doc)
    assert again.json()["value"]["tool_id"] == tool_id
    assert len(fake.jobs) == 1


async def test_failed_job_keeps_its_exit_code(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path
):
    started = (
        await client.post(f"{WS}/exp1/start_job", json=control_document(config_root))
    ).json()["value"]
    fake.set_state(started["tool_id"], "FAILED", exit_code=3)
    failed = await statuses_until(client, started, "FAILED")
    assert (failed["status"], failed["raw_status"], failed["exit_code"]) == ("FAILED", "FAILED", 3)


async def test_kill_job_cancels_through_firecrest(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path
):
    started = (
        await client.post(f"{WS}/exp1/start_job", json=control_document(config_root))
    ).json()["value"]
    fake.set_state(started["tool_id"], "RUNNING")
    await statuses_until(client, started, "RUNNING")

    resp = await client.post(f"{WS}/exp1/kill_job", json=started)
    assert resp.status_code == 200, resp.text
    killed = resp.json()["value"]
    assert (killed["status"], killed["raw_status"]) == ("EXITED", "CANCELLED by 1234")


async def test_firecrest_outage_answers_503_then_recovers(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path
):
    started = (
        await client.post(f"{WS}/exp1/start_job", json=control_document(config_root))
    ).json()["value"]
    fake.listing_down = True
    deadline = time.monotonic() + 15
    while True:
        resp = await client.post(f"{WS}/job_statuses", json=[started])
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert resp.status_code == 503
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.json()["success"] is False

    fake.listing_down = False
    fake.set_state(started["tool_id"], "COMPLETED")
    recovered = await statuses_until(client, started, "DONE", recovering=True)
    assert recovered["status"] == "DONE"


async def test_rejected_submission_is_422_and_nothing_is_kept(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path
):
    doc = control_document(config_root)
    fake.reject_submissions = True
    resp = await client.post(f"{WS}/exp1/start_job", json=doc)
    assert resp.status_code == 422
    assert fake.jobs == {}
    assert fake.submit_calls == 1  # a refusal is not retried
    assert "sbatch: error: invalid partition specified: debug" in resp.json()["error"]
    # the same _id can be submitted once FirecREST accepts it
    fake.reject_submissions = False
    resp = await client.post(f"{WS}/exp1/start_job", json=doc)
    assert resp.status_code == 200, resp.text
    assert resp.json()["value"]["tool_id"] in fake.jobs


async def test_render_job_shows_the_batch_script(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path
):
    resp = await client.post(f"{WS}/exp1/render_job", json=control_document(config_root))
    assert resp.status_code == 200, resp.text
    value = resp.json()["value"]
    assert value["backend"] == "firecrest"
    assert value["script"].startswith("#!/bin/bash\n#SBATCH --job-name=Tester-")
    assert fake.jobs == {}  # a dry run submits nothing


async def test_one_listing_per_poll_tick_however_many_clients_ask(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path
):
    docs = []
    for _ in range(50):
        resp = await client.post(f"{WS}/exp1/start_job", json=control_document(config_root))
        assert resp.status_code == 200, resp.text
        docs.append(resp.json()["value"])
    for job_id in fake.jobs:
        fake.set_state(job_id, "RUNNING")
    service = client.app.state.service  # type: ignore[attr-defined]
    ticks_before, calls_before = service.ticks, fake.listing_calls

    async def poller() -> None:
        for _ in range(5):
            resp = await client.post(f"{WS}/job_statuses", json=docs)
            assert resp.status_code == 200
            await asyncio.sleep(0.05)

    await asyncio.gather(*(poller() for _ in range(20)))
    await statuses_until(client, docs[-1], "RUNNING")

    ticks = service.ticks - ticks_before
    calls = fake.listing_calls - calls_before
    assert calls >= 1
    # every tick lists all 50 jobs in one call (one tick may be in flight)
    assert calls <= ticks + 1


async def test_a_submit_answered_500_after_the_job_was_created_makes_one_job(
    tmp_path: Path, config_root: Path, fake: FakeFirecrest
):
    doc = control_document(config_root)
    fake.ssh_timeout_after_submit = True
    async with running_jid(tmp_path, config_root, fake) as client:
        resp = await client.post(f"{WS}/exp1/start_job", json=doc)
        assert resp.status_code == 200, resp.text
        tool_id = resp.json()["value"]["tool_id"]
        assert list(fake.jobs) == [tool_id]
        again = await client.post(f"{WS}/exp1/start_job", json=doc)  # the client's retry
        assert again.json()["value"]["tool_id"] == tool_id
    async with running_jid(tmp_path, config_root, fake) as client:  # a JID restart
        resp = await client.post(f"{WS}/exp1/start_job", json=doc)
        assert resp.json()["value"]["tool_id"] == tool_id
    assert (len(fake.jobs), fake.submit_calls) == (1, 1)


async def test_a_lost_submission_keeps_its_claim_until_the_job_is_seen(
    tmp_path: Path, config_root: Path, fake: FakeFirecrest
):
    # the job was queued, the answer lost, and the listing cannot show it yet:
    # the JID must neither submit again nor forget the _id
    doc = control_document(config_root)
    fake.ssh_timeout_after_submit = True
    fake.listing_down = True
    async with running_jid(tmp_path, config_root, fake) as client:
        resp = await client.post(f"{WS}/exp1/start_job", json=doc)
        assert resp.status_code == 503, resp.text
        assert "retry-after" in resp.headers
        fake.listing_down = False
        again = await client.post(f"{WS}/exp1/start_job", json=doc)  # the client's retry
        assert again.status_code == 200, again.text
        assert again.json()["value"]["tool_id"] in fake.jobs
    assert (len(fake.jobs), fake.submit_calls) == (1, 1)


async def finished_job(client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path,
                       log: bytes) -> dict[str, Any]:
    started = (
        await client.post(f"{WS}/exp1/start_job", json=control_document(config_root))
    ).json()["value"]
    (path,) = [p for p in fake.logs if p.endswith(f"_{started['tool_id']}.out")]
    fake.logs[path] = log
    fake.set_state(started["tool_id"], "COMPLETED")
    return await statuses_until(client, started, "DONE")


async def job_log_in_chunks(client: httpx.AsyncClient, job: dict[str, Any], limit: int) -> str:
    parts, offset = [], 0
    for _ in range(100_000):
        resp = await client.post(f"{WS}/exp1/job_log",
                                 json={"job": job, "offset": offset, "limit": limit})
        assert resp.status_code == 200, resp.text
        value = resp.json()["value"]
        parts.append(value["text"])
        offset = value["next_offset"]
        if value["complete"]:
            return "".join(parts)
    raise AssertionError("job_log never reached complete")


NON_ASCII_LOG = "".join(f"Tester: étape {i} — données ✓ 𝛼β\n" for i in range(15)).encode()
BIG_LOG = "Tester: frame 000123 — peaks 17 ✓\n".encode() * 190_000  # about 6.9 MB


@pytest.mark.parametrize(("log", "limits"), [(NON_ASCII_LOG, [7, 64, 1024 * 1024]),
                                              (BIG_LOG, [1024 * 1024])])
async def test_logs_of_any_size_read_whole_and_byte_exact_in_chunks(
    client: httpx.AsyncClient, fake: FakeFirecrest, config_root: Path, log: bytes,
    limits: list[int],
):
    done = await finished_job(client, fake, config_root, log)
    resp = await client.post(f"{WS}/exp1/job_log_file", json=done)
    assert resp.status_code == 200, resp.text
    assert resp.json()["value"].encode() == log
    for limit in limits:
        assert (await job_log_in_chunks(client, done, limit)).encode() == log
