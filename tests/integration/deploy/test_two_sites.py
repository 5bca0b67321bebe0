"""One Airflow, two sites: a run's ARP_LOCATION sends its steps to that site's JID.

Two real JID processes; ``jid_default`` names the first and ``jid_siteb`` the
second. A run at ``SITEB`` submits every step to the second; a run at a site
without a connection of its own falls back to ``jid_default``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.airflow.conftest import jid_process, run_dag_test  # noqa: F401 - fixture
from tests.support.jid_server import JidServer
from tests.unit.airflow.support import run_conf

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(400)]

STEPS = {"Tester", "BinaryTester", "SocketTester", "WriteTester", "ReadTester"}


@pytest.fixture
def site_b(tmp_path: Path, jid_process) -> Iterator[JidServer]:  # noqa: F811 - fixture
    with JidServer(tmp_path / "jid-b", [jid_process.root], user="airflow", admin=True) as server:
        yield server


def _jobs(base: str, token: str, root: str) -> list[dict]:
    response = httpx.get(f"{base}/jid/ws/jobs", params={"arp_root_job_id": root},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.json()["value"]


def test_each_run_goes_to_its_site_jid(tmp_path: Path, jid_process, site_b,  # noqa: F811
                                       monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_JID_SITEB", json.dumps({
        "conn_type": "jid", "host": "127.0.0.1", "port": site_b.port, "schema": "http",
        "password": site_b.token}))
    at_b = run_conf(jid_process.config, ARP_LOCATION="SITEB")
    outcome = run_dag_test(tmp_path / "b", jid_process, "test.py", "lute_test", at_b)
    assert outcome["state"] == "success", outcome["output"][-3000:]
    root = at_b["ARP_ROOT_JOB_ID"]
    assert {j["def"]["name"] for j in _jobs(site_b.base, site_b.token, root)} == STEPS
    assert _jobs(jid_process.url, jid_process.token, root) == []

    elsewhere = run_conf(jid_process.config, ARP_LOCATION="S3DF")  # no jid_s3df connection
    outcome = run_dag_test(tmp_path / "a", jid_process, "test.py", "lute_test", elsewhere)
    assert outcome["state"] == "success", outcome["output"][-3000:]
    root = elsewhere["ARP_ROOT_JOB_ID"]
    assert {j["def"]["name"] for j in _jobs(jid_process.url, jid_process.token, root)} == STEPS
    assert _jobs(site_b.base, site_b.token, root) == []
