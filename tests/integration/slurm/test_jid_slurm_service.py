"""A real ``jid-service serve`` with the slurm backend running managed tasks over HTTP.

LUTE's operator sequence (start_job, job_statuses in a loop, job_log_file),
plus kill_job, against real Slurm jobs: DONE, FAILED and EXITED.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.slurm.cluster import (
    LAUNCHER,
    counted_calls,
    scancel_quietly,
    write_config,
    write_counting_shims,
)
from tests.integration.slurm.jid_process import (
    EXPERIMENT,
    JidProcess,
    control_document,
    value,
    wait_statuses,
)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


@pytest.fixture
def jid(slurm_cluster: None, tmp_path: Path) -> Iterator[JidProcess]:
    process = JidProcess(tmp_path / "jid", [tmp_path / "cfg"])
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_done_failed_and_exited_over_http(jid: JidProcess, tmp_path: Path):
    config = write_config(tmp_path / "cfg", sleep_seconds=3)
    long_config = write_config(tmp_path / "cfg" / "long", sleep_seconds=120)
    tester = control_document("Tester", config)
    failing = control_document("FailingTester", config)
    sleeper = control_document("Sleeper", long_config)
    started = {}
    try:
        for doc in (tester, failing, sleeper):
            answer = value(jid.post(f"/{EXPERIMENT}/start_job", doc))
            assert answer["_id"] == doc["_id"]
            assert answer["tool_id"].isdigit()
            assert answer["status"] in ("SUBMITTED", "RUNNING")
            started[doc["_id"]] = answer

        # ARP retries start_job: the same _id gives the same job, nothing resubmitted
        again = value(jid.post(f"/{EXPERIMENT}/start_job", tester))
        assert again["tool_id"] == started[tester["_id"]]["tool_id"]

        # kill the long Sleeper once Slurm runs it
        deadline = time.monotonic() + 60
        while True:
            (current,) = value(jid.post("/job_statuses", [started[sleeper["_id"]]]))
            if current["status"] == "RUNNING":
                break
            assert time.monotonic() < deadline, f"Sleeper never ran: {current}"
            time.sleep(0.3)
        killed = value(jid.post(f"/{EXPERIMENT}/kill_job", current))
        assert killed["status"] == "EXITED"
        assert killed["raw_status"].startswith("CANCELLED")

        final = wait_statuses(jid, list(started.values()))
        assert final[tester["_id"]]["status"] == "DONE"
        assert final[tester["_id"]]["exit_code"] == 0
        assert final[failing["_id"]]["status"] == "FAILED"
        assert final[failing["_id"]]["raw_status"] == "FAILED"
        assert final[failing["_id"]]["exit_code"] not in (None, 0)
        assert final[sleeper["_id"]]["status"] == "EXITED"

        # the operator's last call: the whole log
        fail_log = value(jid.post(f"/{EXPERIMENT}/job_log_file", final[failing["_id"]]))
        assert "Traceback" in fail_log
        tester_log = value(jid.post(f"/{EXPERIMENT}/job_log_file", final[tester["_id"]]))
        assert tester_log.strip()

        # incremental reads concatenate to the same text
        parts, offset = [], 0
        while True:
            piece = value(jid.post(f"/{EXPERIMENT}/job_log",
                                   {"job": final[failing["_id"]], "offset": offset, "limit": 500}))
            parts.append(piece["text"])
            offset = piece["next_offset"]
            if piece["complete"]:
                break
        assert "".join(parts) == fail_log

        # the workflow's jobs, by root id
        listed = httpx.get(f"{jid.base}/jid/ws/jobs", params={"arp_root_job_id": "root-1"},
                           headers=jid.headers, timeout=30)
        assert {d["_id"] for d in value(listed)} == set(started)
    finally:
        scancel_quietly([a["tool_id"] for a in started.values()])


def test_render_health_and_rejection(jid: JidProcess, tmp_path: Path):
    config = write_config(tmp_path / "cfg")
    doc = control_document("Tester", config)
    rendered = value(jid.post(f"/{EXPERIMENT}/render_job", doc))
    assert rendered["backend"] == "slurm"
    assert rendered["argv"][0] == str(LAUNCHER)
    assert rendered["argv"][1:5] == ["-c", str(config), "-t", "Tester"]
    # a dry run stores nothing
    assert value(jid.post("/job_statuses", [doc]))[0]["status"] == ""

    health = httpx.get(f"{jid.base}/healthz", timeout=30)
    assert health.status_code == 200, health.text

    # sbatch refuses a partition the cluster lacks: 422 with its reason, nothing stored
    impossible = control_document("Tester", config, "--partition=nosuch")
    answer = jid.post(f"/{EXPERIMENT}/start_job", impossible)
    assert answer.status_code == 422, answer.text
    assert "partition" in answer.json()["error"].lower()
    assert value(jid.post("/job_statuses", [impossible]))[0]["tool_id"] == ""


def prometheus_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            sample, _, number = line.rpartition(" ")
            if all(f'{k}="{v}"' in sample for k, v in labels.items()):
                total += float(number)
    return total


def test_one_squeue_per_tick_however_many_clients_poll(slurm_cluster: None, tmp_path: Path):
    """20 clients polling job_statuses cost one squeue per poll tick, not one per request."""
    shims, calls_log = tmp_path / "shims", tmp_path / "slurm-calls.log"
    write_counting_shims(shims, calls_log)
    jid = JidProcess(tmp_path / "jid", [tmp_path / "cfg"], poll_interval=0.5, path_prefix=shims)
    config = write_config(tmp_path / "cfg", sleep_seconds=30)
    docs = [control_document("Sleeper", config) for _ in range(4)]
    started: list[dict] = []
    jid.start()
    try:
        started = [value(jid.post(f"/{EXPERIMENT}/start_job", d)) for d in docs]
        time.sleep(1.0)  # let the submissions' own scontrol calls finish
        before_metrics, before_calls = jid.metrics(), counted_calls(calls_log)
        stop_at = time.monotonic() + 5.0

        def client() -> int:
            count = 0
            with httpx.Client(base_url=jid.base, headers=jid.headers, timeout=60) as http:
                while time.monotonic() < stop_at:
                    answer = value(http.post("/jid/ws/job_statuses", json=started))
                    assert len(answer) == len(started)
                    count += 1
            return count

        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            requests = sum(pool.map(lambda _: client(), range(20)))
        after_metrics, after_calls = jid.metrics(), counted_calls(calls_log)
        ticks = (prometheus_value(after_metrics, "jid_poll_ticks_total", outcome="ok")
                 - prometheus_value(before_metrics, "jid_poll_ticks_total", outcome="ok"))
        squeues = after_calls["squeue"] - before_calls["squeue"]
        assert ticks >= 3, f"the poller ticked {ticks} times in 5 s"
        assert requests >= 5 * squeues, (requests, squeues)
        # ticks are read from /metrics between squeue runs: allow the one in flight
        assert ticks <= squeues <= ticks + 1, (squeues, ticks)
        assert after_calls["sacct"] == before_calls["sacct"]
    finally:
        jid.stop()
        scancel_quietly([d["tool_id"] for d in started])
