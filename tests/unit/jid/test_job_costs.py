"""What finished jobs cost: read after they end, in the job document and in /metrics."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from jid_service import job_costs
from jid_service.backends.base import BackendUnavailable
from jid_service.backends.job_cost import CostReading, JobCost
from jid_service.backends.local_costs import read_cost
from jid_service.backends.local_runner import main as run_wrapped
from jid_service.context import JobContext
from jid_service.job_costs import JobCosts
from jid_service.metrics import Metrics
from jid_service.store import JobStore, StateUpdate
from tests.unit.jid.test_api import BASE, start, wait_final


async def _with_cost(client, job: dict, auth: dict, timeout: float = 20) -> dict:
    """The job's document once its cost is recorded (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await client.get(f"{BASE}/jobs", params={"arp_root_job_id": "root-1"}, headers=auth)
        found = next(d for d in r.json()["value"] if d["_id"] == job["_id"])
        if "cost" in found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"no cost recorded: {found}"
        await asyncio.sleep(0.05)


async def test_a_local_job_s_cost_in_its_document_and_in_metrics(client, auth, doc) -> None:
    job = await wait_final(client, await start(client, doc("FailingTester"), auth), auth)
    found = await _with_cost(client, job, auth)
    cost = found["cost"]
    assert set(cost) == set(JobCost.model_fields)
    assert cost["exit_code"] == 3 == found["exit_code"], found
    assert cost["run_seconds"] > 0 and cost["queue_wait_seconds"] >= 0
    assert cost["max_rss_bytes"] > 1 << 20  # a Python process: megabytes, not kilobytes
    assert cost["cpu_seconds"] > 0
    assert cost["cpus"] is None and cost["cpu_efficiency"] is None  # nothing allocated locally
    # a client sends the document back as it got it (the operator does)
    r = await client.post(f"{BASE}/job_statuses", json=[found], headers=auth)
    assert r.status_code == 200 and r.json()["value"][0]["cost"] == cost
    text = (await client.get("/metrics")).text
    assert 'jid_job_run_seconds_count{task="FailingTester"} 1.0' in text
    assert 'jid_job_queue_wait_seconds_count{task="FailingTester"} 1.0' in text
    assert 'jid_job_max_rss_bytes_count{task="FailingTester"} 1.0' in text
    assert 'jid_job_cpu_efficiency_count{task="FailingTester"}' not in text  # unknown: left out


def test_the_local_wrapper_records_peak_memory_and_times(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "spec.json").write_text(json.dumps({"submitted_at": 1.0}))
    hold = "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])"
    assert run_wrapped([str(job_dir / "exit"), "--", sys.executable, "-c", hold]) == 0
    cost = read_cost(job_dir).cost
    assert cost.max_rss_bytes >= 64 << 20
    assert cost.exit_code == 0 and cost.run_seconds > 0 and cost.cpu_seconds > 0
    assert cost.queue_wait_seconds > 0  # from the spec's submission time to the start


class FakeBackend:
    """A backend whose cost readings the test sets, counting its calls."""

    def __init__(self) -> None:
        self.readings: dict[str, CostReading] = {}
        self.asked: list[list[str]] = []
        self.down = False

    async def costs(self, tool_ids: Sequence[str]) -> dict[str, CostReading]:
        self.asked.append(list(tool_ids))
        if self.down:
            raise BackendUnavailable("sacct timed out")
        return {t: r for t, r in self.readings.items() if t in tool_ids}


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch) -> tuple[JobCosts, FakeBackend, JobStore, Metrics]:
    monkeypatch.setattr(job_costs, "ASK_INTERVAL", 0.0)
    store = JobStore(f"sqlite:///{tmp_path / 'jid.db'}")
    for job_id in ("a", "b", "c"):
        store.claim({"_id": job_id, "def": {"name": "Tester"}}, "exp1", "alice")
        store.complete_claim(job_id, f"t{job_id}", None, "PENDING")
    backend, metrics = FakeBackend(), Metrics()
    context = JobContext(settings=None, backend=backend, store=store,  # type: ignore[arg-type]
                         metrics=metrics, replica=None)  # type: ignore[arg-type]
    yield JobCosts(context), backend, store, metrics
    store.close()


def _finish(store: JobStore, costs: JobCosts, *job_ids: str) -> None:
    updates = [StateUpdate(j, "DONE", "COMPLETED", 0) for j in job_ids]
    store.apply(updates)
    costs.note(updates)


async def test_one_call_for_all_and_settled_readings_stored_at_once(tracker) -> None:
    costs, backend, store, metrics = tracker
    _finish(store, costs, "a", "b")
    costs.note([StateUpdate("c", "RUNNING", "RUNNING", None)])  # not finished: not followed
    backend.readings = {"ta": CostReading(JobCost(run_seconds=4.0)),
                        "tb": CostReading(JobCost(run_seconds=1.0), settled=False)}
    assert await costs.collect() == 1
    assert backend.asked == [["ta", "tb"]]
    assert store.get("a").cost["run_seconds"] == 4.0 and store.get("b").cost is None
    assert costs.pending == 1
    assert metrics.registry.get_sample_value(
        "jid_job_run_seconds_count", {"task": "Tester"}) == 1


async def test_an_unsettled_reading_is_asked_again_then_kept_as_it_is(tracker, monkeypatch):
    costs, backend, store, _ = tracker
    _finish(store, costs, "a")
    backend.readings = {"ta": CostReading(JobCost(run_seconds=1.0), settled=False)}
    assert await costs.collect() == 0
    backend.readings = {"ta": CostReading(JobCost(run_seconds=2.0, max_rss_bytes=10),
                                          settled=True)}
    assert await costs.collect() == 1  # the settled reading of a later ask
    assert store.get("a").cost["max_rss_bytes"] == 10
    _finish(store, costs, "b")
    backend.readings = {"tb": CostReading(JobCost(run_seconds=3.0), settled=False)}
    monkeypatch.setattr(job_costs, "SETTLE_SECONDS", 0.0)
    assert await costs.collect() == 1
    assert store.get("b").cost["run_seconds"] == 3.0 and costs.pending == 0


async def test_an_outage_pauses_and_an_unknown_job_is_given_up(tracker, monkeypatch) -> None:
    costs, backend, store, _ = tracker
    _finish(store, costs, "a")
    backend.down = True
    assert await costs.collect() == 0  # no raise: a poll tick never fails for a cost
    assert await costs.collect() == 0 and len(backend.asked) == 1  # paused
    backend.down = False
    monkeypatch.setattr(job_costs, "PAUSE_SECONDS", 0.0)
    costs._next_ask = 0.0
    assert await costs.collect() == 0 and costs.pending == 1  # unknown: still asked
    monkeypatch.setattr(job_costs, "GIVE_UP_SECONDS", 0.0)
    assert await costs.collect() == 0 and costs.pending == 0
    assert store.get("a").cost is None
