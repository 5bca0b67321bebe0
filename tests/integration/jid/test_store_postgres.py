"""The job store and the JID app on a real PostgreSQL (``LUTE_TEST_PG_URL``, exported by .ci/run).

Each test works in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from jid_service.auth import issue_token
from jid_service.settings import JIDSettings
from jid_service.store import INTERRUPTED_RAW_STATUS, JobStore, StateUpdate
from tests.support.pg_schema import fresh_schema
from tests.unit.jid.conftest import FAKE_TASK, SECRET, running_app
from tests.unit.jid.test_api import BASE, wait_final

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def _doc(job_id: str, experiment: str = "exp1", root: str = "r1") -> dict:
    return {"_id": job_id, "experiment": experiment, "arp_root_job_id": root, "run_num": "1",
            "def": {"_id": "d", "name": "Tester"}}


def test_store_operations(pg_url: str) -> None:
    store = JobStore(pg_url)
    try:
        assert store.engine.dialect.name == "postgresql"
        assert store.claim(_doc("a"), "exp1", "alice")
        assert not store.claim(_doc("a"), "exp1", "alice")  # the primary key guards the claim
        assert store.get("a").claimed_only
        store.complete_claim("a", "101", "/logs/a.out", "SUBMITTED")
        assert store.claim(_doc("b", "exp2", "r2"), "exp2", "bob")
        store.complete_claim("b", "102", None, "SUBMITTED")
        assert store.claim(_doc("c"), "exp1", "alice")  # left as an interrupted claim
        assert sorted(j.id for j in store.active()) == ["a", "b"]  # claims have no tool_id
        assert store.apply([StateUpdate("a", "DONE", "COMPLETED", 0)]) == 1
        assert store.apply([StateUpdate("a", "RUNNING", "RUNNING", None)]) == 0  # final stays
        assert store.fail_interrupted_claims() == 1
        assert store.get("c").raw_status == INTERRUPTED_RAW_STATUS
        assert [r.id for r in store.query(None, arp_root_job_id="r1")] == ["a", "c"]
        assert [r.id for r in store.query(frozenset({"exp2"}))] == ["b"]
        assert [r.id for r in store.query(None, status="DONE")] == ["a"]
        assert store.count_by_status() == {"DONE": 1, "SUBMITTED": 1, "FAILED": 1}
        assert set(store.get_many(["a", "b", "zz"])) == {"a", "b"}
        doc = store.get("a").to_document()
        assert (doc["status"], doc["tool_id"], doc["exit_code"]) == ("DONE", "101", 0)
        indexes = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("jid_jobs")}
        assert {"ix_jid_jobs_experiment", "ix_jid_jobs_root", "ix_jid_jobs_status"} <= indexes
    finally:
        store.close()


def test_concurrent_claims_one_winner(pg_url: str) -> None:
    store = JobStore(pg_url)
    try:
        for n in range(5):
            doc = _doc(f"race{n}")
            with ThreadPoolExecutor(8) as pool:
                wins = list(pool.map(lambda d: store.claim(d, "exp1", "u"), [doc] * 8))
            assert wins.count(True) == 1
    finally:
        store.close()


async def test_app_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """LUTE's sequence and concurrent identical start_jobs, with the store on PostgreSQL."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.yaml").write_text("title: t\n")
    settings = JIDSettings(
        auth_secret=SECRET, db_url=pg_url, state_dir=tmp_path / "state",
        allowed_config_roots=[cfg], poll_interval=0.05,
        local_command=[sys.executable, str(FAKE_TASK)],
        launcher=tmp_path / "submit_slurm.sh",
    )
    headers = {"Authorization": f"Bearer {issue_token(SECRET, 'alice', ['exp1'], 600)}"}
    control = {
        "_id": str(uuid.uuid4()), "arp_root_job_id": None, "experiment": "exp1", "run_num": 3,
        "user": "alice", "status": "", "tool_id": "", "def_id": "x",
        "def": {"_id": "d1", "name": "Tester", "executable": str(tmp_path / "submit_slurm.sh"),
                "trigger": "MANUAL", "location": "S3DF",
                "parameters": f"--taskname Tester --config {cfg / 't.yaml'}",
                "run_as_user": "alice"},
    }
    async with running_app(settings) as client:
        answers = await asyncio.gather(*[
            client.post(f"{BASE}/exp1/start_job", json=control, headers=headers)
            for _ in range(5)
        ])
        assert {a.status_code for a in answers} == {200}
        assert len({a.json()["value"]["tool_id"] for a in answers}) == 1
        assert len(list((tmp_path / "state" / "local" / "jobs").iterdir())) == 1
        job = await wait_final(client, answers[0].json()["value"], headers)
        assert job["status"] == "DONE"
        assert job["run_num"] == 3
        r = await client.get("/healthz")
        assert r.json()["value"]["store_ok"] is True


async def test_store_errors_answer_503_and_recover(pg_url: str, tmp_path: Path) -> None:
    """With the job table gone mid-run, reads answer 503 + Retry-After (never 500), then recover."""
    settings = JIDSettings(
        auth_secret=SECRET, db_url=pg_url, state_dir=tmp_path / "state",
        allowed_config_roots=[tmp_path], poll_interval=0.05,
    )
    headers = {"Authorization": f"Bearer {issue_token(SECRET, 'alice', ['exp1'], 600)}"}
    probe = [{"_id": "x1", "experiment": "exp1", "run_num": 1, "def": {
        "_id": "d", "name": "n", "executable": "e", "parameters": ""}}]
    async with running_app(settings) as client:
        engine = client.app.state.service.store.engine
        r = await client.post(f"{BASE}/job_statuses", json=probe, headers=headers)
        assert r.status_code == 200
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE jid_jobs RENAME TO jid_jobs_away"))
        try:
            for path, body in ((f"{BASE}/job_statuses", probe),
                               (f"{BASE}/exp1/job_log_file", probe[0])):
                r = await client.post(path, json=body, headers=headers)
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"]
                assert r.json() == {"success": False, "value": None,
                                    "error": "job store unavailable"}
            r = await client.get(f"{BASE}/jobs", headers=headers)
            assert r.status_code == 503
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE jid_jobs_away RENAME TO jid_jobs"))
        r = await client.post(f"{BASE}/job_statuses", json=probe, headers=headers)
        assert r.status_code == 200
