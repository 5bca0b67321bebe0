"""The job store's costs: recorded once, read with every document, added to an older store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from jid_service.backends.job_cost import JobCost
from jid_service.store import JobStore, StateUpdate


def _doc(job_id: str, **extra: object) -> dict:
    return {"_id": job_id, "experiment": "exp1", "arp_root_job_id": "r1", "run_num": "1",
            "def": {"_id": "d", "name": "Tester"}, **extra}


COST = JobCost(queue_wait_seconds=2.0, run_seconds=5.0, exit_code=0, max_rss_bytes=3 << 30,
               cpu_seconds=4.0, cpus=2, cpu_efficiency=0.4)


def check_costs(store: JobStore) -> None:
    """What every store must do with costs (SQLite here, PostgreSQL in the integration tests)."""
    for job_id in ("a", "b"):
        assert store.claim(_doc(job_id, cost={"run_seconds": 1e9}), "exp1", "alice")
        store.complete_claim(job_id, f"t-{job_id}", None, "PENDING")
    store.apply([StateUpdate("a", "DONE", "COMPLETED", 0)])
    # a caller's own cost is never shown as the JID's
    assert "cost" not in store.get("a").to_document()

    assert store.record_costs({"a": COST}) == 1
    # recorded once: a later reading does not replace it
    assert store.record_costs({"a": JobCost(run_seconds=99.0)}) == 0

    expected = COST.model_dump()
    assert store.get("a").to_document()["cost"] == expected
    many = store.get_many(["a", "b"])
    assert many["a"].to_document()["cost"] == expected
    assert "cost" not in many["b"].to_document()
    listed = {r.id: r.to_document() for r in store.query(None, arp_root_job_id="r1")}
    assert listed["a"]["cost"] == expected and "cost" not in listed["b"]
    # more than 2**31 bytes survive (a BIGINT column)
    assert listed["a"]["cost"]["max_rss_bytes"] == 3 << 30


def test_costs_on_sqlite(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'jid.db'}")
    try:
        check_costs(store)
    finally:
        store.close()


def test_a_store_of_the_previous_version_gains_the_cost_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = JobStore(f"sqlite:///{path}")
    assert store.claim(_doc("old"), "exp1", "alice")
    store.close()
    with sqlite3.connect(path) as conn:  # as the previous version left it: no cost table
        conn.execute("DROP TABLE jid_job_costs")
    store = JobStore(f"sqlite:///{path}")
    try:
        assert store.get("old").to_document()["_id"] == "old"
        assert store.record_costs({"old": JobCost(run_seconds=1.5)}) == 1
        assert store.get("old").to_document()["cost"]["run_seconds"] == 1.5
        with sqlite3.connect(path) as conn:
            row = conn.execute("SELECT document FROM jid_jobs WHERE id='old'").fetchone()
        assert "cost" not in json.loads(row[0])  # the job table itself is unchanged
    finally:
        store.close()
