"""``jid-service serve`` replicas on the real PostgreSQL with the slurm backend.

The module's tests share the replicas (starting one costs seconds), in order:

1. 20 concurrent identical ``start_job`` calls spread over two replicas: one job.
2. A replica starting while another submits (a slow sbatch) leaves that claim
   alone, and so does the polling replica's scan for dead replicas' claims.
3. ``kill -9`` of the polling replica while 10 jobs run on the real Slurm:
   another takes over within 3 poll ticks, every job ends DONE with exactly
   one Slurm job, and ``/wait`` clients on either replica see the changes.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
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

pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.timeout(300)]

POLL = 1.0
ORDER = {"SUBMITTED": 0, "RUNNING": 1, "DONE": 2, "FAILED": 2, "EXITED": 2}


def tag_counts(keys: list[str]) -> Counter[str]:
    """How many jobs Slurm lists for each job key (by the submission comment)."""
    tags = {job_tag(k): k for k in keys}
    return Counter(tags[c] for c in squeue_comments().values() if c in tags)


def standby_ticks(jid: JidProcess) -> float:
    """How many poll ticks ``jid`` has spent standing by (``jid_poll_ticks{outcome="standby"}``)."""
    for line in jid.metrics().splitlines():
        if line.startswith('jid_poll_ticks_total{outcome="standby"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


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


@dataclass
class Cluster:
    """Three replicas on one store: the first two started, the third left to a test.

    The second one's ``sbatch`` sleeps 12 s while ``slow_flag`` exists.
    """

    replicas: list[JidProcess]
    config: Path
    slow_flag: Path
    keys: list[str] = field(default_factory=list)

    def running(self) -> list[JidProcess]:
        """The replicas whose process is alive."""
        return [j for j in self.replicas if j.proc is not None and j.proc.poll() is None]

    def document(self, name: str) -> dict[str, Any]:
        """A new ``Sleeper`` control document (cancelled at the end if still in Slurm)."""
        doc = control_document("Sleeper", self.config, key=f"ha-{name}-{time.time_ns()}")
        self.keys.append(doc["_id"])
        return doc


@pytest.fixture(scope="module")
def cluster(slurm_cluster: None, module_pg_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("ha")
    config = write_config(base / "cfg", sleep_seconds=2)
    slow, flag = base / "slow-sbatch", base / "slow.flag"
    slow.mkdir()
    real = shutil.which("sbatch")
    assert real is not None
    (slow / "sbatch").write_text(
        f"#!/bin/sh\nif [ -e {flag} ]; then sleep 12; fi\nexec {real} \"$@\"\n")
    (slow / "sbatch").chmod(0o755)
    replicas = slurm_replicas(base, base / "cfg", module_pg_url, count=3, poll_interval=POLL,
                              path_prefixes={1: slow})
    state = Cluster(replicas, config, flag)
    try:
        for jid in replicas[:2]:
            jid.start()
        yield state
    finally:
        for jid in replicas:
            jid.stop()
        tags = {job_tag(k) for k in state.keys}
        scancel_quietly([j for j, c in squeue_comments().items() if c in tags])


def test_twenty_identical_start_jobs_over_both_replicas_make_one_job(cluster: Cluster) -> None:
    replicas = cluster.running()[:2]
    doc = cluster.document("twins")
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


def test_a_starting_replica_leaves_a_live_replicas_claim_alone(cluster: Cluster) -> None:
    """A claim whose sbatch is under way on a live replica is neither failed nor dropped
    by a replica starting, nor by the polling replica's scan for dead replicas' claims."""
    first, submitter, late = cluster.replicas
    assert leader_of([first, submitter]) is first  # polls, and scans for orphans
    doc = cluster.document("live-claim")
    cluster.slow_flag.touch()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pending = pool.submit(submitter.post, f"/{EXPERIMENT}/start_job", doc, 120.0)
        deadline = time.monotonic() + 10
        while value(first.post("/job_statuses", [doc]))[0]["raw_status"] != "CLAIMED":
            assert time.monotonic() < deadline, "the claim did not appear"
            time.sleep(0.1)
        late.start()  # a replica starting while the claim's sbatch sleeps
        job = value(pending.result(timeout=120))
    finally:
        cluster.slow_flag.unlink()
        pool.shutdown(wait=True, cancel_futures=True)
    assert job["tool_id"] and job["status"] != "FAILED", job
    final = wait_statuses(late, [doc], timeout=120)
    assert final[doc["_id"]]["status"] == "DONE"
    assert tag_counts([doc["_id"]]) == Counter({doc["_id"]: 1})


def test_kill_9_of_the_polling_replica_while_ten_jobs_run(cluster: Cluster) -> None:
    running = cluster.running()
    assert len(running) >= 2, "the module's replicas did not start"
    leader = leader_of(running)
    standbys = [jid for jid in running if jid is not leader]
    assert len({health(jid)["replica"] for jid in running}) == len(running)
    assert "jid_poller_leader 1.0" in leader.metrics()
    assert all("jid_poller_leader 0.0" in jid.metrics() for jid in standbys)
    docs = [cluster.document(f"kill9-{i}") for i in range(10)]
    tool_ids: dict[str, str] = {}
    jobs = []
    for i, doc in enumerate(docs):  # the submissions go to every replica
        job = value(running[i % len(running)].post(f"/{EXPERIMENT}/start_job", doc))
        tool_ids[doc["_id"]] = job["tool_id"]
        jobs.append(job)
    watchers = [Watcher(leader, standbys[0], jobs), Watcher(standbys[0], standbys[0], jobs)]
    for watcher in watchers:
        watcher.start()
    deadline = time.monotonic() + 90
    while not any(d["status"] == "RUNNING"
                  for d in value(standbys[0].post("/job_statuses", docs))):
        assert time.monotonic() < deadline, "no job started"
        time.sleep(0.2)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(standbys)) as pool:
        before = dict(zip([j.port for j in standbys], pool.map(standby_ticks, standbys),
                          strict=True))
    leader.kill()
    killed = time.monotonic()
    while not any(health(jid)["poller"] == "leader" for jid in standbys):
        assert time.monotonic() - killed < 30, "no replica took over the poller"
        time.sleep(0.05)
    seconds = time.monotonic() - killed
    successor = leader_of(standbys)
    # the successor's ticks from the kill to holding the lock, that tick included
    # (counted in ticks: a loaded machine stretches the seconds of every tick alike)
    ticks = standby_ticks(successor) - before[successor.port] + 1
    assert ticks <= 3, f"takeover took {ticks:g} poll ticks ({seconds:.1f} s)"
    assert "jid_poller_leader 1.0" in successor.metrics()

    final = wait_statuses(standbys[0], docs, timeout=150)
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
