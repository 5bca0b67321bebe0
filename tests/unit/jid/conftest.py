"""Fixtures of the JID unit/API tests: an app on a temporary state dir, tokens, documents."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jid_service.app import create_app
from jid_service.auth import issue_token
from jid_service.backends.base import Backend, BackendJobState
from jid_service.settings import JIDSettings

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4
FAKE_TASK = Path(__file__).with_name("fake_run_task.py")
LAUNCHER = Path(__file__).resolve().parents[3] / "launch_scripts" / "submit_slurm.sh"


@pytest.fixture
def config_root(tmp_path: Path) -> Path:
    root = tmp_path / "configs"
    root.mkdir()
    (root / "test.yaml").write_text("title: test\n")
    return root


@pytest.fixture
def settings(tmp_path: Path, config_root: Path) -> JIDSettings:
    return JIDSettings(
        backend="local",
        auth_secret=SECRET,
        db_url=f"sqlite:///{tmp_path / 'jid.db'}",
        state_dir=tmp_path / "state",
        allowed_config_roots=[config_root],
        allowed_launcher_locations=["/sdf/group/lcls/ds/tools/lute/latest"],
        poll_interval=0.05,
        local_command=[sys.executable, str(FAKE_TASK)],
        kill_wait_seconds=10,
    )


async def until_final(backend: Backend, tool_id: str, timeout: float = 60) -> BackendJobState:
    """Tick ``backend`` until job ``tool_id`` has finished; its final state."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await backend.tick()
        state = (await backend.statuses([tool_id]))[tool_id]
        if state.status.finished:
            return state
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_app(settings: JIDSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a started JID app (lifespan run: the poller is live)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://jid") as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def client(settings: JIDSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as c:
        yield c


@pytest.fixture
def token() -> Callable[..., str]:
    def make(user: str = "alice", experiments: list[str] | str | None = None,
             admin: bool = False, ttl: float = 600) -> str:
        return issue_token(SECRET, user, experiments if experiments is not None else ["exp1"],
                           ttl, admin=admin)

    return make


@pytest.fixture
def auth(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token()}"}


@pytest.fixture
def doc(config_root: Path) -> Callable[..., dict[str, Any]]:
    """A control document shaped exactly like the one LUTE's JIDSlurmOperator sends."""

    def make(task: str = "Tester", params: str | None = None, experiment: str = "exp1",
             **overrides: Any) -> dict[str, Any]:
        parameters = params if params is not None else (
            f"--taskname {task} --config {config_root / 'test.yaml'} "
            "--partition=debug --ntasks=1"
        )
        definition = {
            "_id": str(uuid.uuid4()),
            "name": task,
            "executable": "/sdf/group/lcls/ds/tools/lute/latest/launch_scripts/submit_slurm.sh",
            "trigger": "MANUAL",
            "location": "S3DF",
            "parameters": parameters,
            "run_as_user": "alice",
        }
        definition.update(overrides.pop("definition", {}))
        control = {
            "_id": str(uuid.uuid4()),
            "arp_root_job_id": "root-1",
            "experiment": experiment,
            "run_num": "12",
            "user": "alice",
            "status": "",
            "tool_id": "",
            "def_id": str(uuid.uuid4()),
            "def": definition,
        }
        control.update(overrides)
        return control

    return make
