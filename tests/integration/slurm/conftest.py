"""Fixtures for the real-Slurm tests: a live cluster (or a clear failure), configs, a backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from jid_service.backends.slurm import SlurmBackend
from tests.integration.slurm.cluster import LAUNCHER, job_env, require_slurm, write_config


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The running cluster; fails the test (never skips) when it is missing."""
    require_slurm()


@pytest.fixture
def task_config(tmp_path: Path) -> Path:
    """A config whose ``Sleep`` lasts 3 s."""
    return write_config(tmp_path / "cfg")


@pytest.fixture
def backend(slurm_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlurmBackend:
    """A slurm backend with the repository's launcher and a tmp log dir."""
    for key, value in job_env().items():
        monkeypatch.setenv(key, value)
    return SlurmBackend(LAUNCHER, tmp_path / "logs", query_timeout=30.0)
