"""Fault tests of the JID with the slurm backend on the real cluster.

1. ``kill -9`` of the daemon while 10 jobs run, restart on the same store:
   every job ends in its right state and none is submitted twice.
2. The Slurm controller frozen (SIGSTOP of the pid the dev script recorded)
   for ~20 s mid-run: calls that need the scheduler answer 503 with
   Retry-After (never 500), the daemon recovers by itself and the jobs finish.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from jid_service.backends.slurm import job_tag
from jid_service.health import HEALTH_CACHE_SECONDS
from tests.integration.slurm.cluster import (
    frozen_slurmctld,
    scancel_quietly,
    squeue_comments,
    write_config,
)
from tests.integration.slurm.jid_process import (
    EXPERIMENT,
    JidProcess,
    control_document,
    value,
    wait_statuses,
)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(420)]

OUTAGE_SECONDS = 20.0


def tag_counts(keys: list[str]) -> Counter[str]:
    """How many jobs Slurm lists for each job key (by the submission comment)."""
    tags = {job_tag(k): k for k in keys}
    return Counter(tags[c] for c in squeue_comments().values() if c in tags)


def test_kill_9_while_ten_jobs_run_then_restart(slurm_cluster: None, tmp_path: Path):
    config = write_config(tmp_path / "cfg", sleep_seconds=3)
    jid = JidProcess(tmp_path / "jid", [tmp_path / "cfg"])
    docs = [control_document("Sleeper", config, key=f"kill9-{i}-{time.time_ns()}")
            for i in range(10)]
    tool_ids: dict[str, str] = {}
    jid.start()
    try:
        for doc in docs:
            tool_ids[doc["_id"]] = value(jid.post(f"/{EXPERIMENT}/start_job", doc))["tool_id"]
        # wait until Slurm runs some of them, then kill the daemon without warning
        deadline = time.monotonic() + 60
        while not any(d["status"] == "RUNNING" for d in value(jid.post("/job_statuses", docs))):
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.3)
        jid.kill()

        jid.start()
        # ARP resends start_job for jobs it did not see finish: same jobs, no resubmission
        for doc in docs:
            again = value(jid.post(f"/{EXPERIMENT}/start_job", doc))
            assert again["tool_id"] == tool_ids[doc["_id"]]
        final = wait_statuses(jid, docs, timeout=180)
        assert {k: d["status"] for k, d in final.items()} == {d["_id"]: "DONE" for d in docs}
        assert {k: d["tool_id"] for k, d in final.items()} == tool_ids
        assert all(d["exit_code"] == 0 for d in final.values())
        # exactly one Slurm job per document
        assert tag_counts(list(tool_ids)) == Counter(dict.fromkeys(tool_ids, 1))
    finally:
        jid.stop()
        scancel_quietly(list(tool_ids.values()))


def test_kill_9_during_submissions_then_clients_retry(slurm_cluster: None, tmp_path: Path):
    """A daemon killed while it submits: after a restart and the clients' retries,
    every document has exactly one Slurm job and it runs to DONE."""
    config = write_config(tmp_path / "cfg", sleep_seconds=1)
    jid = JidProcess(tmp_path / "jid", [tmp_path / "cfg"])
    docs = [control_document("Sleeper", config, key=f"midsubmit-{i}-{time.time_ns()}")
            for i in range(10)]
    keys = [d["_id"] for d in docs]
    jid.start()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=10)
    try:
        # ten clients submit at once; the daemon dies while sbatch calls are under way
        pending = [pool.submit(jid.post, f"/{EXPERIMENT}/start_job", d, 30.0) for d in docs]
        time.sleep(0.5)
        jid.kill()
        concurrent.futures.wait(pending, timeout=60)
        jid.start()
        # every client retries its start_job, as the operator does after an error
        tool_ids = {d["_id"]: value(jid.post(f"/{EXPERIMENT}/start_job", d))["tool_id"]
                    for d in docs}
        final = wait_statuses(jid, docs, timeout=180)
        assert {k: d["status"] for k, d in final.items()} == dict.fromkeys(keys, "DONE")
        assert {k: d["tool_id"] for k, d in final.items()} == tool_ids
        assert tag_counts(keys) == Counter(dict.fromkeys(keys, 1))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        jid.stop()
        scancel_quietly([j for j, c in squeue_comments().items()
                         if c in {job_tag(k) for k in keys}])


def test_controller_outage_gives_503_and_the_jid_recovers(slurm_cluster: None, tmp_path: Path):
    config = write_config(tmp_path / "cfg", sleep_seconds=4)
    jid = JidProcess(tmp_path / "jid", [tmp_path / "cfg"])
    running = [control_document("Sleeper", config, key=f"outage-{i}-{time.time_ns()}")
               for i in range(3)]
    late = control_document("Tester", config, key=f"outage-late-{time.time_ns()}")
    tool_ids: list[str] = []
    codes: Counter[int] = Counter()
    jid.start()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    try:
        for doc in running:
            tool_ids.append(value(jid.post(f"/{EXPERIMENT}/start_job", doc))["tool_id"])
        deadline = time.monotonic() + 60
        while not any(d["status"] == "RUNNING"
                      for d in value(jid.post("/job_statuses", running))):
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.3)

        with frozen_slurmctld():
            frozen_at = time.monotonic()
            submit = pool.submit(jid.post, f"/{EXPERIMENT}/start_job", late, 120.0)
            # a good health answer is reused for HEALTH_CACHE_SECONDS: probe after that
            time.sleep(HEALTH_CACHE_SECONDS + 0.5)
            health = pool.submit(httpx.get, f"{jid.base}/healthz", timeout=120.0)
            saw_503 = None
            while time.monotonic() - frozen_at < OUTAGE_SECONDS:
                answer = jid.post("/job_statuses", running, timeout=60)
                codes[answer.status_code] += 1
                if answer.status_code == 503:
                    saw_503 = answer
                time.sleep(0.5)
            # the submission and the health probe have answered by now, or will soon
            submit_answer = submit.result(timeout=120)
            health_answer = health.result(timeout=120)

        assert set(codes) <= {200, 503}, codes
        assert saw_503 is not None, f"job_statuses never reported the outage: {codes}"
        assert int(saw_503.headers["Retry-After"]) >= 1
        assert saw_503.json()["success"] is False
        assert submit_answer.status_code == 503, submit_answer.text
        assert int(submit_answer.headers["Retry-After"]) >= 1
        assert health_answer.status_code == 503, health_answer.text

        # recovers by itself: statuses answer again and every job finishes
        final = wait_statuses(jid, running, timeout=180, tolerate_503=True)
        assert all(d["status"] == "DONE" for d in final.values()), final
        # the client retries the submission that got 503: one job, even if the
        # frozen controller queued the first attempt once it woke up
        retried = value(jid.post(f"/{EXPERIMENT}/start_job", late))
        tool_ids.append(retried["tool_id"])
        done = wait_statuses(jid, [retried], timeout=120)
        assert done[late["_id"]]["status"] == "DONE"
        assert tag_counts([late["_id"]])[late["_id"]] == 1
        health_after = httpx.get(f"{jid.base}/healthz", timeout=30)
        assert health_after.status_code == 200, health_after.text
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        jid.stop()
        scancel_quietly(tool_ids)
