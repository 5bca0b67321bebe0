"""Fixtures of the replica tests: a fresh PostgreSQL schema per test (dropped afterwards)
and the real Slurm cluster (a clear failure when it is missing)."""

from __future__ import annotations

from tests.integration.jid.test_store_postgres import pg_url
from tests.integration.slurm.conftest import slurm_cluster

__all__ = ["pg_url", "slurm_cluster"]
