"""Every backend built the way the daemon builds it: ``create_backend`` from settings.

Each documented option of a backend is set to a value other than its default,
and the test checks that the value reached the backend.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jid_service.backends import create_backend
from jid_service.backends.firecrest import FirecrestBackend
from jid_service.backends.local import LocalBackend
from jid_service.backends.slurm import SlurmBackend
from jid_service.settings import JIDSettings

FIRECREST_ENV = {
    "FIRECREST_URL": "https://firecrest.example.org/api",
    "FIRECREST_CLIENT_ID": "lute-jid-test",
    "FIRECREST_CLIENT_SECRET": "a-client-secret-for-the-test",
    "AUTH_TOKEN_URL": "https://auth.example.org/token",
}


def test_local_gets_every_option(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "some.task.runner"]
    settings = JIDSettings(backend="local", state_dir=tmp_path / "state",
                           local_command=command, local_max_parallel=3,
                           job_env_passthrough=["SITE_SCRATCH"])
    backend = create_backend(settings)
    assert isinstance(backend, LocalBackend)
    assert backend.root == tmp_path / "state" / "local"
    assert backend.command == command
    assert backend.max_parallel == 3
    assert backend.env_passthrough == ["SITE_SCRATCH"]


def test_local_command_defaults_to_this_python(tmp_path: Path) -> None:
    backend = create_backend(JIDSettings(backend="local", state_dir=tmp_path))
    assert isinstance(backend, LocalBackend)
    assert backend.command == [sys.executable, "-m", "lute.run_task"]


def test_slurm_gets_every_option(tmp_path: Path) -> None:
    settings = JIDSettings(
        backend="slurm",
        state_dir=tmp_path / "state",
        launcher=tmp_path / "bin" / "submit_slurm.sh",
        log_dir=tmp_path / "logs",
        slurm_unknown_grace=5,
        slurm_submit_timeout=90,
        slurm_query_timeout=7,
        job_env_passthrough=["SITE_SCRATCH"],
    )
    backend = create_backend(settings)
    assert isinstance(backend, SlurmBackend)
    assert backend.launcher == tmp_path / "bin" / "submit_slurm.sh"
    assert backend.log_dir == tmp_path / "logs"
    assert backend.unknown_grace == 5
    assert backend.submit_timeout == 90
    assert backend.query_timeout == 7
    assert backend.env_passthrough == ["SITE_SCRATCH"]


def test_slurm_environment_names_reach_the_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JID_BACKEND", "slurm")
    monkeypatch.setenv("JID_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("JID_SLURM_UNKNOWN_GRACE", "5")
    monkeypatch.setenv("JID_SLURM_SUBMIT_TIMEOUT", "90")
    monkeypatch.setenv("JID_SLURM_QUERY_TIMEOUT", "7")
    backend = create_backend(JIDSettings())
    assert isinstance(backend, SlurmBackend)
    # log_dir unset: the default under state_dir
    assert backend.log_dir == tmp_path / "state" / "logs"
    assert (backend.unknown_grace, backend.submit_timeout, backend.query_timeout) == (5, 90, 7)


async def test_firecrest_gets_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FIRECREST_ENV.items():
        monkeypatch.setenv(name, value)
    settings = JIDSettings(
        backend="firecrest",
        firecrest_system="cluster",
        firecrest_work_dir="/scratch/lute/jid/",
        firecrest_launcher="/opt/lute/bin/lute-run-task",
    )
    backend = create_backend(settings)
    assert isinstance(backend, FirecrestBackend)
    try:
        assert backend.system == "cluster"
        assert backend.work_dir == "/scratch/lute/jid"
        assert backend.launcher == "/opt/lute/bin/lute-run-task"
        assert repr(backend) == (
            "FirecrestBackend(url='https://firecrest.example.org/api', system='cluster')"
        )
        source = backend._auth._source
        assert source._client_id == FIRECREST_ENV["FIRECREST_CLIENT_ID"]
        assert source._client_secret == FIRECREST_ENV["FIRECREST_CLIENT_SECRET"]
        assert source._token_uri == FIRECREST_ENV["AUTH_TOKEN_URL"]
        assert source.timeout == 10
    finally:
        await backend.aclose()

