"""Helpers for the batch-node unit tests: tmp configs with a tmp work dir, a facility package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lute import extensions
from tests.unit.batch.facility_dist import install_facility


def config_text(header: dict[str, Any], tasks: dict[str, Any]) -> str:
    """Two YAML documents: header and Task parameters."""
    return yaml.safe_dump_all([header, tasks], explicit_start=True, sort_keys=False)


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """EXPERIMENT and RUN_NUM as the ARP sets them; no stray LUTE_ overrides."""
    import os

    for key in list(os.environ):
        if key.upper().startswith("LUTE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("EXPERIMENT", "xpptest01")
    monkeypatch.setenv("RUN_NUM", "7_20260101")


@pytest.fixture
def make_config(tmp_path: Path, batch_env: None) -> Callable[..., Path]:
    """Write a config in ``tmp_path/cfg`` with work dir ``tmp_path/work``; returns its path."""

    def make(tasks: dict[str, Any] | None = None, name: str = "config.yaml", **header: Any) -> Path:
        cfg_dir = tmp_path / "cfg"
        cfg_dir.mkdir(exist_ok=True)
        (tmp_path / "work").mkdir(exist_ok=True)
        head: dict[str, Any] = {"title": "unit", "task_timeout": 60, "work_dir": "../work"}
        head.update(header)
        path = cfg_dir / name
        path.write_text(config_text(head, tasks or {}))
        return path

    return make


@pytest.fixture
def facility(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The facility package installed into a directory on sys.path."""
    import sys

    site = install_facility(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    extensions.forget()
    yield site
    extensions.forget()
    for name in [m for m in sys.modules if m.startswith("facility_pkg")]:
        del sys.modules[name]
