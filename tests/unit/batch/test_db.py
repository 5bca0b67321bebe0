"""Results DB: records, parameter hash, queries, concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from lute.io.db import ResultsDB, params_hash


def test_params_hash_is_stable_and_order_independent():
    a = params_hash("Test", {"x": 1, "nested": {"b": 2, "a": [1, 2]}})
    b = params_hash("Test", {"nested": {"a": [1, 2], "b": 2}, "x": 1})
    assert a == b
    assert a != params_hash("Test", {"x": 2, "nested": {"b": 2, "a": [1, 2]}})
    assert a != params_hash("Other", {"x": 1, "nested": {"b": 2, "a": [1, 2]}})


def test_record_lifecycle(tmp_path):
    db = ResultsDB.for_work_dir(tmp_path)
    rid = db.start_run(
        managed_task="Tester",
        task="Test",
        experiment="e",
        run="1",
        params={"a": 1},
        config_path="/c.yaml",
        slurm_job_id="42",
    )
    running = db.get(rid)
    assert running is not None
    assert (running.status, running.params, running.slurm_job_id) == ("RUNNING", {"a": 1}, "42")
    assert running.params_hash == params_hash("Test", {"a": 1})
    db.finish_run(
        rid,
        status="COMPLETED",
        exit_code=0,
        summary={"ok": True},
        outputs={"out": "/x"},
        payload_path="p.bin",
        payload_bytes=10,
    )
    done = db.get(rid)
    assert done is not None
    assert (done.status, done.summary, done.outputs, done.payload_bytes) == (
        "COMPLETED",
        {"ok": True},
        {"out": "/x"},
        10,
    )
    assert done.duration_s is not None and done.duration_s >= 0
    with pytest.raises(ValueError):
        db.finish_run(rid, status="WEIRD", exit_code=0)


def test_wal_mode(tmp_path):
    ResultsDB.for_work_dir(tmp_path)
    conn = sqlite3.connect(tmp_path / "lute.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_queries(tmp_path):
    db = ResultsDB.for_work_dir(tmp_path)
    ids = []
    for status, run in (
        ("COMPLETED", "1"),
        ("FAILED", "1"),
        ("COMPLETED", "1"),
        ("COMPLETED", "2"),
    ):
        rid = db.start_run(managed_task="W", task="T", experiment="e", run=run, params={"r": run})
        db.finish_run(rid, status=status, exit_code=0, outputs={"id": rid})
        ids.append(rid)
    assert db.latest_completed("T", "e", "1").id == ids[2]
    assert db.latest_output("T", "e", "1", "id") == ids[2]
    assert db.latest_output("T", "e", "3", "id") is None
    assert db.latest_output("T", "other", "1", "id") is None
    assert [r.id for r in db.runs(task="T", run="1")] == ids[:3]
    assert [r.id for r in db.runs(status="FAILED")] == [ids[1]]
    h = params_hash("T", {"r": "1"})
    assert db.find_completed("T", "e", "1", h).id == ids[2]
    assert db.find_completed("T", "e", "2", h) is None


def _writer(path: str, worker: int, count: int) -> None:
    db = ResultsDB(path)
    for i in range(count):
        rid = db.start_run(
            managed_task="M", task="T", experiment="e", run=str(worker), params={"i": i}
        )
        db.finish_run(rid, status="COMPLETED", exit_code=0, summary={"worker": worker, "i": i})


def test_concurrent_writers(tmp_path):
    path = str(Path(tmp_path) / "lute.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 15)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    runs = ResultsDB(path).runs()
    assert len(runs) == 90
    assert all(r.status == "COMPLETED" for r in runs)
    assert sorted((r.summary["worker"], r.summary["i"]) for r in runs) == sorted(
        (w, i) for w in range(6) for i in range(15)
    )
