"""A real ``jid-service serve`` (uvicorn on loopback, local backend) running real managed tasks.

Tester ends DONE, FailingTester FAILED, a cancelled Sleeper EXITED; a kill -9 of
the daemon while jobs run and wait loses nothing and submits nothing twice.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from tests.support.jid_server import jid_service_argv

from .serve_process import EXPERIMENT, ServeProcess, control_document, write_task_config

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def jid(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"])
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_done_failed_exited_through_the_lute_sequence(jid: ServeProcess, tmp_path: Path) -> None:
    config = write_task_config(tmp_path / "cfg", sleep_seconds=2)
    long_config = write_task_config(tmp_path / "cfg" / "long", sleep_seconds=120)
    tester = control_document("Tester", config)
    failing = control_document("FailingTester", config)
    sleeper = control_document("Sleeper", long_config)
    started = [jid.value(jid.post(f"/{EXPERIMENT}/start_job", d)) for d in
               (tester, failing, sleeper)]
    for doc, answer in zip((tester, failing, sleeper), started, strict=True):
        assert answer["_id"] == doc["_id"] and answer["tool_id"]
        assert answer["status"] in ("SUBMITTED", "RUNNING")

    # cancel the Sleeper once it runs
    current = started[2]
    deadline = time.monotonic() + 60
    while current["status"] != "RUNNING":
        assert time.monotonic() < deadline, current
        (current,) = jid.value(jid.post("/wait", {"jobs": [current], "timeout": 5}))
    killed = jid.value(jid.post(f"/{EXPERIMENT}/kill_job", current))
    assert killed["status"] == "EXITED"

    # LUTE's loop: job_statuses until the status is neither RUNNING nor SUBMITTED
    jobs = started[:2]
    deadline = time.monotonic() + 90
    while any(j["status"] in ("RUNNING", "SUBMITTED") for j in jobs):
        assert time.monotonic() < deadline, jobs
        jobs = jid.value(jid.post("/job_statuses", jobs))
        time.sleep(0.2)
    done, failed = jobs
    assert (done["status"], done["raw_status"], done["exit_code"]) == ("DONE", "COMPLETED", 0)
    assert failed["status"] == "FAILED" and failed["exit_code"] != 0

    log = jid.value(jid.post(f"/{EXPERIMENT}/job_log_file", done))
    assert "Test passed" in log and f"experiment {EXPERIMENT} run 7" in log
    log = jid.value(jid.post(f"/{EXPERIMENT}/job_log_file", failed))
    assert "Test was asked to fail" in log

    # the workflow's jobs, listed by root id
    listed = jid.value(jid.get("/jobs", {"arp_root_job_id": "root-1"}))
    assert {j["_id"]: j["status"] for j in listed} == {
        tester["_id"]: "DONE", failing["_id"]: "FAILED", sleeper["_id"]: "EXITED"}

    # the CLI lists the same store
    out = subprocess.run(
        [*jid_service_argv(), "jobs", "--root-id", "root-1", "--width", "300"],
        env=jid.env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    for doc, status in ((tester, "DONE"), (failing, "FAILED"), (sleeper, "EXITED")):
        line = next(ln for ln in out.splitlines() if doc["_id"] in ln)
        assert status in line


def test_kill_9_restart_loses_nothing(tmp_path: Path) -> None:
    """kill -9 with 6 jobs running or queued; after a restart all end right, none twice."""
    config = write_task_config(tmp_path / "cfg", sleep_seconds=3)
    jid = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"],
                       extra_settings={"local_max_parallel": 2})
    jid.start()
    try:
        docs = [control_document("Sleeper", config) for _ in range(4)]
        docs += [control_document("FailingTester", config),
                 control_document("Tester", config)]
        started = [jid.value(jid.post(f"/{EXPERIMENT}/start_job", d)) for d in docs]
        statuses = {j["status"] for j in jid.value(jid.post("/job_statuses", started))}
        assert "SUBMITTED" in statuses  # some wait for a slot while the daemon dies
        jid.kill()
        jid.start()
        # a client retrying start_job after the restart gets the same jobs back
        again = [jid.value(jid.post(f"/{EXPERIMENT}/start_job", d)) for d in docs]
        assert [a["tool_id"] for a in again] == [s["tool_id"] for s in started]
        final = jid.wait_final(again)
        assert [f["status"] for f in final] == ["DONE"] * 4 + ["FAILED", "DONE"]
        job_dirs = list((tmp_path / "jid" / "state" / "local" / "jobs").iterdir())
        assert len(job_dirs) == len(docs)  # nothing was submitted twice
    finally:
        jid.stop()


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    jid = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"], extra_settings={"auth_secret": None})
    result = subprocess.run(
        [*jid_service_argv(), "serve", "--port", str(jid.port)],
        env=jid.env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "JID_AUTH_SECRET" in result.stderr


def test_token_command_prints_only_a_token(tmp_path: Path) -> None:
    jid = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"])
    result = subprocess.run(
        [*jid_service_argv(), "token", "--user", "u1", "--experiment", "e1",
         "--experiment", "e2", "--admin", "--ttl", "120"],
        env=jid.env(), capture_output=True, text=True, timeout=60, check=True,
    )
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = jwt.decode(token, jid.secret, algorithms=["HS256"])
    assert claims["sub"] == "u1" and claims["experiments"] == ["e1", "e2"]
    assert claims["admin"] is True and 100 <= claims["exp"] - time.time() <= 121
