"""Settings: defaults, YAML file, environment precedence, relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jid_service.backends import create_backend
from jid_service.backends.local import LocalBackend
from jid_service.settings import REPO_ROOT, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("JID_"):
            monkeypatch.delenv(key)


def test_defaults_point_into_the_repository(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    s = load_settings(empty)
    assert s.backend == "local"
    assert s.poll_interval == 1.0 and s.local_max_parallel == 16
    assert s.launcher == REPO_ROOT / "launch_scripts" / "submit_slurm.sh"
    assert s.allowed_config_roots == [REPO_ROOT / "config"]
    assert s.auth_secret is None
    assert s.effective_db_url == f"sqlite:///{s.state_dir / 'jid.db'}"
    assert "partition" in s.slurm_allowed_options and "exclusive" in s.slurm_allowed_options


def test_repository_settings_file_loads() -> None:
    s = load_settings(REPO_ROOT / "config" / "jid.yaml")
    assert s.backend == "local"


def test_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_settings(empty).state_dir == tmp_path / "xdg" / "lute-jid"


def test_yaml_relative_paths_and_env_precedence(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    f = conf / "jid.yaml"
    f.write_text(
        "backend: slurm\n"
        "poll_interval: 2.5\n"
        "db_url: sqlite:///db/jid.db\n"
        "state_dir: state\n"
        "launcher: ../bin/submit_slurm.sh\n"
        "allowed_config_roots: [cfgs, /abs/cfgs]\n"
        "slurm_allowed_options: [--partition, ntasks]\n"
    )
    s = load_settings(f)
    assert s.backend == "slurm" and s.poll_interval == 2.5
    assert s.db_url == f"sqlite:///{conf / 'db' / 'jid.db'}"
    assert s.state_dir == conf / "state"
    assert s.launcher == conf / ".." / "bin" / "submit_slurm.sh"
    assert s.allowed_config_roots == [conf / "cfgs", Path("/abs/cfgs")]
    assert s.slurm_allowed_options == ["partition", "ntasks"]

    monkeypatch.setenv("JID_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("JID_ALLOWED_CONFIG_ROOTS", '["/from/env"]')
    monkeypatch.setenv("JID_AUTH_SECRET", "e" * 40)
    s = load_settings(f)
    assert s.poll_interval == 0.5
    assert s.allowed_config_roots == [Path("/from/env")]
    assert s.auth_secret == "e" * 40
    # explicit arguments beat both
    assert load_settings(f, poll_interval=3.0).poll_interval == 3.0

    monkeypatch.setenv("JID_SETTINGS_FILE", str(f))
    assert load_settings().backend == "slurm"


@pytest.mark.parametrize(
    "text",
    ["backend: lsf\n", "poll_interval: 0\n", "local_max_parallel: 0\n", "unknown_key: 1\n",
     "- a list\n"],
)
def test_bad_settings_are_refused(tmp_path: Path, text: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises((ValidationError, ValueError)):
        load_settings(f)


def test_registry_builds_the_local_backend(settings) -> None:
    backend = create_backend(settings)
    assert isinstance(backend, LocalBackend)
    assert backend.max_parallel == settings.local_max_parallel
    with pytest.raises(ValueError, match="unknown JID backend"):
        create_backend(settings.model_copy(update={"backend": "lsf"}))


def test_app_factory_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jid_service.app import app_from_environment

    f = tmp_path / "jid.yaml"
    f.write_text(f"state_dir: {tmp_path / 'state'}\n")
    monkeypatch.setenv("JID_SETTINGS_FILE", str(f))
    with pytest.raises(ValueError, match="auth_secret is required"):
        app_from_environment()
    monkeypatch.setenv("JID_AUTH_SECRET", "f" * 40)
    app = app_from_environment()
    assert app.state.settings.state_dir == tmp_path / "state"
    assert "/jid/ws/{experiment}/start_job" in app.openapi()["paths"]
