"""Two ``jid-service serve`` replicas on the real PostgreSQL with the slurm backend.

1. ``kill -9`` of the polling replica while 10 jobs run on the real Slurm: the
   other takes over within 3 poll ticks, every job ends DONE with exactly one
   Slurm job, and ``/wait`` clients on either replica see the changes.
2. 20 concurrent identical ``start_job`` calls spread over both: one job.
3. A replica starting while another submits (a slow sbatch) leaves that claim
   alone, and so does the polling replica's scan for dead replicas' claims.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from jid_service.backends.slurm import job_tag
from tests.integration.ha.replicas import health, leader_of, slurm_replicas
from tests.integration.slurm.cluster import scancel_quietly, squeue_comments, write_config
from tests.integration.slurm.jid_process import (
    EXPERIMENT,
    JidProcess,
    control_document,
    value,
    wait_statuses,
)
from tests.support.jid_server import FINAL

pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.timeout(240)]

POLL = 1.0
ORDER = {"SUBMITTED": 0, "RUNNING": 1, "DONE": 2, "FAILED": 2, "EXITED": 2}


def tag_counts(keys: list[str]) -> Counter[str]:
    """How many jobs Slurm lists for each job key (by the submission comment)."""
    tags = {job_tag(k): k for k in keys}
    return Counter(tags[c] for c in squeue_comments().values() if c in tags)


class Watcher(threading.Thread):
    """A ``/wait`` client following every job on one replica, as a triggerer does.

    When its replica dies it moves to ``fallback`` (what a proxy in front would
    do). It records each job's statuses in the order seen, and how many waits
    came back with nothing changed (timed out).
    """

    def __init__(self, jid: JidProcess, fallback: JidProcess, jobs: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.jid, self.fallback, self.jobs = jid, fallback, jobs
        self.seen: dict[str, list[str]] = {j["_id"]: [j["status"]] for j in jobs}
        self.unchanged = 0
        self.moved = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 180
            while any(j["status"] not in FINAL for j in self.jobs):
                assert time.monotonic() < deadline, "jobs did not end"
                try:
                    response = self.jid.post("/wait", {"jobs": self.jobs, "timeout": 60},
                                             timeout=75)
                except httpx.TransportError:
                    self.jid, self.moved = self.fallback, True
                    continue
                fresh = value(response)
                if [j["status"] for j in fresh] == [j["status"] for j in self.jobs]:
                    self.unchanged += 1
                for job in fresh:
                    if job["status"] != self.seen[job["_id"]][-1]:
                        self.seen[job["_id"]].append(job["status"])
                self.jobs = fresh
        except BaseException as err:
            self.error = err


def test_kill_9_of_the_polling_replica_while_ten_jobs_run(
        slurm_cluster: None, pg_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg", sleep_seconds=2)
    replicas = slurm_replicas(tmp_path, tmp_path / "cfg", pg_url, poll_interval=POLL)
    docs = [control_document("Sleeper", config, key=f"ha-kill9-{i}-{time.time_ns()}")
            for i in range(10)]
    tool_ids: dict[str, str] = {}
    try:
        for jid in replicas:
            jid.start()
        leader = leader_of(replicas)
        standby = next(jid for jid in replicas if jid is not leader)
        assert health(standby)["replica"] != health(leader)["replica"]
        assert "jid_poller_leader 1.0" in leader.metrics()
        assert "jid_poller_leader 0.0" in standby.metrics()
        jobs = []
        for i, doc in enumerate(docs):  # the submissions go to both replicas
            job = value(replicas[i % 2].post(f"/{EXPERIMENT}/start_job", doc))
            tool_ids[doc["_id"]] = job["tool_id"]
            jobs.append(job)
        watchers = [Watcher(leader, standby, jobs), Watcher(standby, standby, jobs)]
        for watcher in watchers:
            watcher.start()
        deadline = time.monotonic() + 90
        while not any(d["status"] == "RUNNING"
                      for d in value(standby.post("/job_statuses", docs))):
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.2)

        leader.kill()
        killed = time.monotonic()
        while health(standby)["poller"] != "leader":
            assert time.monotonic() - killed < 30, "no replica took over the poller"
            time.sleep(0.05)
        takeover = time.monotonic() - killed
        assert takeover <= 3 * POLL, f"takeover took {takeover:.2f} s"
        assert "jid_poller_leader 1.0" in standby.metrics()

        final = wait_statuses(standby, docs, timeout=150)
        assert {k: d["status"] for k, d in final.items()} == dict.fromkeys(tool_ids, "DONE")
        assert {k: d["tool_id"] for k, d in final.items()} == tool_ids
        assert all(d["exit_code"] == 0 for d in final.values())
        assert tag_counts(list(tool_ids)) == Counter(dict.fromkeys(tool_ids, 1))
        for watcher in watchers:
            watcher.join(timeout=90)
            assert not watcher.is_alive() and watcher.error is None, watcher.error
            # every change reached the client in order, woken by the change itself
            for key, statuses in watcher.seen.items():
                assert statuses[-1] == "DONE", (key, statuses)
                assert statuses == sorted(statuses, key=ORDER.__getitem__), (key, statuses)
            assert watcher.unchanged == 0
        assert watchers[0].moved  # the client of the killed replica carried on
    finally:
        for jid in replicas:
            jid.stop()
        scancel_quietly([t for t in tool_ids.values() if t])


def test_twenty_identical_start_jobs_over_both_replicas_make_one_job(
        slurm_cluster: None, pg_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg", sleep_seconds=1)
    replicas = slurm_replicas(tmp_path, tmp_path / "cfg", pg_url, poll_interval=POLL)
    doc = control_document("Sleeper", config, key=f"ha-twins-{time.time_ns()}")
    try:
        for jid in replicas:
            jid.start()
        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(
                lambda i: value(replicas[i % 2].post(f"/{EXPERIMENT}/start_job", doc)),
                range(20)))
        tool_ids = {a["tool_id"] for a in answers}
        assert len(tool_ids) == 1 and "" not in tool_ids, tool_ids
        assert tag_counts([doc["_id"]]) == Counter({doc["_id"]: 1})
        final = wait_statuses(replicas[1], [doc], timeout=120)
        assert final[doc["_id"]]["status"] == "DONE"
        assert tag_counts([doc["_id"]]) == Counter({doc["_id"]: 1})
    finally:
        for jid in replicas:
            jid.stop()
        scancel_quietly([j for j, c in squeue_comments().items() if c == job_tag(doc["_id"])])


def test_a_starting_replica_leaves_a_live_replicas_claim_alone(
        slurm_cluster: None, pg_url: str, tmp_path: Path) -> None:
    """A claim whose sbatch is under way on a live replica is neither failed nor dropped
    by a replica starting, nor by the polling replica's scan for dead replicas' claims."""
    config = write_config(tmp_path / "cfg", sleep_seconds=1)
    slow = tmp_path / "slow-sbatch"
    slow.mkdir()
    real = shutil.which("sbatch")
    assert real is not None
    (slow / "sbatch").write_text(f"#!/bin/sh\nsleep 12\nexec {real} \"$@\"\n")
    (slow / "sbatch").chmod(0o755)
    first, submitter, late = slurm_replicas(tmp_path, tmp_path / "cfg", pg_url, count=3,
                                            poll_interval=POLL, path_prefixes={1: slow})
    doc = control_document("Sleeper", config, key=f"ha-live-claim-{time.time_ns()}")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        first.start()
        submitter.start()
        assert leader_of([first, submitter]) is first  # polls, and scans for orphans
        pending = pool.submit(submitter.post, f"/{EXPERIMENT}/start_job", doc, 120.0)
        deadline = time.monotonic() + 10
        while value(first.post("/job_statuses", [doc]))[0]["raw_status"] != "CLAIMED":
            assert time.monotonic() < deadline, "the claim did not appear"
            time.sleep(0.1)
        late.start()  # a replica starting while the claim's sbatch sleeps
        job = value(pending.result(timeout=120))
        assert job["tool_id"] and job["status"] != "FAILED", job
        final = wait_statuses(late, [doc], timeout=120)
        assert final[doc["_id"]]["status"] == "DONE"
        assert tag_counts([doc["_id"]]) == Counter({doc["_id"]: 1})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for jid in (first, submitter, late):
            jid.stop()
        scancel_quietly([j for j, c in squeue_comments().items() if c == job_tag(doc["_id"])])
