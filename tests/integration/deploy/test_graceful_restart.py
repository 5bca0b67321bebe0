"""SIGTERM of a real ``jid-service serve`` while jobs run and clients wait: nothing fails.

The open waits are answered at once (200 with the current state, or 503 with
``Retry-After``; never 500), the daemon exits 0 well before its shutdown
timeout, and a daemon restarted on the same store takes the jobs back: the
operator's own client, waiting through the restart, sees every job end DONE.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lute.airflow.client import JIDClient, RetryPolicy
from tests.integration.jid.serve_process import (
    EXPERIMENT,
    ServeProcess,
    control_document,
    write_task_config,
)

pytestmark = pytest.mark.timeout(240)

JOBS = 5


def _raw_wait(base: str, headers: dict[str, str], job: dict[str, Any],
              answers: list[httpx.Response | Exception]) -> None:
    """One long poll (60 s) held open across the SIGTERM; its answer, whatever it is."""
    try:
        answers.append(httpx.post(f"{base}/jid/ws/wait", json={"jobs": [job], "timeout": 60},
                                  headers=headers, timeout=90))
    except httpx.HTTPError as exc:
        answers.append(exc)


def _follow(client: JIDClient, job: dict[str, Any], out: dict[str, Any]) -> None:
    """Wait for the job's end as the operator does, riding out the restart."""
    waiting = client.with_retry(RetryPolicy.outage(120))
    try:
        while job["status"] not in ("DONE", "FAILED", "EXITED"):
            (job,) = waiting.wait([job], timeout=20)
        out[job["_id"]] = job
    except Exception as exc:  # reported by the test
        out[job["_id"]] = exc


def test_sigterm_answers_waits_and_a_restart_takes_the_jobs_back(tmp_path: Path) -> None:
    config = write_task_config(tmp_path / "cfg", sleep_seconds=8)
    jid = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"],
                       extra_settings={"local_max_parallel": JOBS})
    jid.start()
    client = JIDClient(jid.base, token=jid.token)
    try:
        started = [jid.value(jid.post(f"/{EXPERIMENT}/start_job",
                                      control_document("Sleeper", config)))
                   for _ in range(JOBS)]
        running = started
        deadline = time.monotonic() + 60
        while any(j["status"] != "RUNNING" for j in running):
            assert time.monotonic() < deadline, running
            running = jid.value(jid.post("/job_statuses", running))
            time.sleep(0.2)

        raw: list[httpx.Response | Exception] = []
        followed: dict[str, Any] = {}
        threads = [threading.Thread(target=_raw_wait, args=(jid.base, jid.headers, j, raw))
                   for j in running]
        threads += [threading.Thread(target=_follow, args=(client, j, followed))
                    for j in running]
        for t in threads:
            t.start()
        time.sleep(1.0)  # every wait is open in the daemon
        assert raw == []

        assert jid.proc is not None
        sent = time.monotonic()
        os.kill(jid.proc.pid, signal.SIGTERM)
        returncode = jid.proc.wait(timeout=60)
        stopped_after = time.monotonic() - sent
        jid.proc = None
        log = jid.log_file.read_text()
        assert returncode == 0, log[-3000:]
        # the waits were answered, not cut off at uvicorn's shutdown timeout
        assert "timeout graceful shutdown exceeded" not in log, log[-3000:]
        assert "Exception in ASGI application" not in log, log[-3000:]
        for t in threads[:JOBS]:
            t.join(timeout=30)
        assert len(raw) == JOBS, raw
        for answer in raw:
            assert isinstance(answer, httpx.Response), answer
            if answer.status_code == 503:
                assert int(answer.headers["retry-after"]) >= 1
            else:
                assert answer.status_code == 200, answer.text
                assert answer.json()["value"][0]["status"] == "RUNNING"

        jid.start()
        for t in threads[JOBS:]:
            t.join(timeout=120)
        assert sorted(followed) == sorted(j["_id"] for j in started)
        for job_id, job in followed.items():
            assert not isinstance(job, Exception), f"{job_id}: {job!r}"
            assert job["status"] == "DONE", job
        # the restarted daemon holds the same jobs, each submitted once
        again = [jid.value(jid.post(f"/{EXPERIMENT}/start_job", s)) for s in started]
        assert [a["tool_id"] for a in again] == [s["tool_id"] for s in started]
        job_dirs = list((tmp_path / "jid" / "state" / "local" / "jobs").iterdir())
        assert len(job_dirs) == JOBS
        print(f"\nSIGTERM to exit: {stopped_after:.2f} s")
    finally:
        client.close()
        jid.stop()
