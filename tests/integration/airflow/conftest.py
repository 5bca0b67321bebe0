"""Fixtures of the Airflow-side integration tests: a real JID process and a real Airflow 3.

Both listen on free loopback ports below the ephemeral range, keep their
state in pytest's temporary directory, and are stopped (by the pid they were
started with) when the module that uses them is done, so the rest of the
suite does not carry an idle Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lute.launch.ports import free_port_block
from tests.support.jid_server import JidServer
from tests.unit.airflow.support import REPO_ROOT, write_test_config


@dataclass
class JIDProcess:
    """A running ``jid-service serve`` (local backend)."""

    url: str
    port: int
    token: str
    config: Path
    root: Path

    def connection_env(self, with_token: bool = True) -> str:
        """``AIRFLOW_CONN_JID_DEFAULT`` for this JID (optionally without its token)."""
        conn = {"conn_type": "jid", "host": "127.0.0.1", "port": self.port, "schema": "http"}
        if with_token:
            conn["password"] = self.token
        return json.dumps(conn)


@pytest.fixture(scope="module")
def jid_process(tmp_path_factory) -> Iterator[JIDProcess]:
    """A real JID process with the local backend on a free loopback port."""
    root = tmp_path_factory.mktemp("jid")
    with JidServer(root, [root], user="airflow", admin=True) as server:
        yield JIDProcess(server.base, server.port, server.token,
                         write_test_config(root / "cfg"), root)


def run_dag_test(
    tmp_path: Path,
    jid: JIDProcess,
    dag_file: str,
    dag_id: str,
    conf: dict,
    connection_token: bool = True,
) -> dict:
    """``dag.test()`` of a DAG of workflows/airflow in a fresh process; its JSON outcome."""
    home = tmp_path / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "workflows" / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_CONN_JID_DEFAULT": jid.connection_env(connection_token),
            "LUTE_WORKFLOW_DEFS_DIR": str(tmp_path / "defs"),
        }
    )
    runner = Path(__file__).with_name("dag_test_runner.py")
    done = subprocess.run(
        [
            sys.executable,
            str(runner),
            str(REPO_ROOT / "workflows" / "airflow" / dag_file),
            dag_id,
            json.dumps(conf),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"dag.test printed no outcome (rc {done.returncode}):\n{done.stderr[-4000:]}"
    outcome = json.loads(lines[-1])
    outcome["stderr"] = done.stderr
    outcome["output"] = done.stdout + done.stderr
    return outcome


@dataclass
class AirflowStack:
    """A running Airflow 3 + JID dev stack and what the tests need to drive it."""

    stack: object
    client: object
    config: Path
    long_config: Path
    root: Path

    def jid_jobs(self, arp_root_job_id: str) -> list[dict]:
        """The JID's jobs of one workflow run."""
        response = httpx.get(
            f"{self.stack.jid_url}/jid/ws/jobs",
            params={"arp_root_job_id": arp_root_job_id},
            headers={"Authorization": f"Bearer {self.stack.jid_token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["value"]


@pytest.fixture(scope="module")
def airflow_stack(tmp_path_factory) -> Iterator[AirflowStack]:
    """Airflow 3 (api-server, scheduler, dag-processor, triggerer; SQLite) and a JID."""
    from lute.launch.airflow_api import AirflowClient
    from lute.launch.devstack import Stack

    root = tmp_path_factory.mktemp("airflow-stack")
    airflow_port = free_port_block(3)
    jid_port = free_port_block(1, exclude=set(range(airflow_port, airflow_port + 3)))
    stack = Stack(
        root / "stack",
        airflow_port=airflow_port,
        jid_port=jid_port,
        backend="local",
        parallelism=4,
        dag_refresh_s=2,
        allowed_config_roots=[str(root)],
        extra_env={"LUTE_WORKFLOW_DEFS_DIR": str(root / "defs")},
        jid_env={"JID_LOCAL_MAX_PARALLEL": "8", "JID_POLL_INTERVAL": "0.25"},
        timeout=240.0,
    )
    stack.start()
    client = AirflowClient(
        stack.airflow_url, username=stack.username, password=stack.password, timeout=30.0
    )
    try:
        client.login()
        yield AirflowStack(
            stack,
            client,
            write_test_config(root / "cfg"),
            write_test_config(root / "cfg_long", sleep_seconds=300),
            root,
        )
    finally:
        client.close()
        stack.stop()
