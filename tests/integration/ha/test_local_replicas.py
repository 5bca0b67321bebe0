"""The local backend runs jobs on one host: a second replica on the same store refuses to start."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.ha.replicas import health
from tests.support.jid_server import JidServer, jid_service_argv

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]


def test_a_second_local_replica_refuses_to_start(pg_url: str, tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    first = JidServer(tmp_path / "first", [configs], {"db_url": pg_url})
    second = JidServer(tmp_path / "second", [configs], {"db_url": pg_url})
    with first:
        assert health(first)["poller"] == "leader"
        refused = subprocess.run(
            [*jid_service_argv(), "serve", "--host", "127.0.0.1", "--port", str(second.port)],
            env=second.env(), capture_output=True, text=True, timeout=150, check=False)
        assert refused.returncode != 0
        message = refused.stderr.strip().splitlines()
        assert message == [
            "jid-service: another JID replica with the local backend already runs on this "
            "store: local jobs live on one host; use the slurm or firecrest backend to run "
            "replicas"], refused.stderr
        assert health(first)["backend_ok"]  # the first one carries on
