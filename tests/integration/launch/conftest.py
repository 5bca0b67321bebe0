"""Fixtures of the launcher integration tests (each module starts its own stack)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def defs_dir(tmp_path_factory) -> Path:
    """Where this module's dynamic workflow definitions are stored."""
    return tmp_path_factory.mktemp("dynamic_defs")
