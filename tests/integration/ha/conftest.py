"""Fixtures of the replica tests: a fresh PostgreSQL schema per test (or per module),
and the real Slurm cluster (a clear failure when it is missing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.slurm.conftest import slurm_cluster
from tests.support.pg_schema import fresh_schema

__all__ = ["slurm_cluster"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A store URL of a schema of this test's own."""
    with fresh_schema("jid_ha") as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_url() -> Iterator[str]:
    """A store URL of a schema the module's tests share (replicas kept running between them)."""
    with fresh_schema("jid_ha") as url:
        yield url
