"""The single poller: one backend.statuses() call per tick however many clients ask."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jid_service.backends import create_backend
from jid_service.backends.base import SubmitSpec
from jid_service.backends.local import LocalBackend
from jid_service.store import INTERRUPTED_RAW_STATUS, JobStore

from .conftest import running_app
from .test_api import BASE, start, wait_final


def _sample(client, name: str, **labels: str) -> float:
    value = client.app.state.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def _ticks(client) -> float:
    return sum(_sample(client, "jid_poll_ticks_total", outcome=o)
               for o in ("ok", "unavailable", "error"))


async def test_clients_never_call_the_backend(client, auth, doc) -> None:
    jobs = [await start(client, doc("Sleeper"), auth) for _ in range(10)]
    calls_before = _sample(client, "jid_backend_calls_total", operation="statuses", outcome="ok")
    ticks_before = _ticks(client)

    async def poll(n: int) -> None:
        for _ in range(10):
            if n % 2:
                r = await client.post(f"{BASE}/job_statuses", json=jobs, headers=auth)
            else:
                r = await client.post(f"{BASE}/wait", json={"jobs": jobs, "timeout": 0.05},
                                      headers=auth)
            assert r.status_code == 200

    await asyncio.gather(*(poll(n) for n in range(20)))  # 200 status requests
    calls = _sample(client, "jid_backend_calls_total", operation="statuses",
                    outcome="ok") - calls_before
    ticks = _ticks(client) - ticks_before
    # every tick counts, whatever its outcome: one that failed after its
    # backend call (a busy store under load) still made only that one call
    assert calls <= ticks + 1, f"{calls} calls in {ticks} ticks"  # +1: call made, not yet counted
    assert calls < 200
    for job in jobs:
        await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)


def _leave_claim(settings, job_id: str) -> None:
    """A claim with no backend id: what a daemon killed mid-submission leaves in the store."""
    store = JobStore(settings.effective_db_url)
    doc = {"_id": job_id, "experiment": "exp1", "run_num": "1",
           "def": {"_id": "d", "name": "Tester"}}
    assert store.claim(doc, "exp1", "alice")
    store.close()


async def test_start_drops_an_interrupted_claim_that_was_never_submitted(settings, auth) -> None:
    """A claim whose submission never reached the backend is forgotten: a retry submits it."""
    _leave_claim(settings, "half-done")
    async with running_app(settings) as client:
        r = await client.get(f"{BASE}/jobs", headers=auth)
        assert r.json()["value"] == []


async def test_start_records_an_interrupted_submission_the_backend_has(settings, auth) -> None:
    """A daemon killed between the backend's submit and recording the id loses nothing."""
    _leave_claim(settings, "half-done")
    backend = create_backend(settings)
    spec = SubmitSpec(job_key="half-done", experiment="exp1", run="1", user="alice",
                      taskname="Tester",
                      config_path=Path(settings.allowed_config_roots[0]) / "x.yaml")
    submitted = await backend.submit(spec)
    await backend.aclose()
    async with running_app(settings) as client:
        r = await client.get(f"{BASE}/jobs", headers=auth)
        (job,) = r.json()["value"]
        assert job["tool_id"] == submitted.tool_id


async def test_start_fails_interrupted_claims_a_backend_cannot_settle(settings, auth,
                                                                      monkeypatch) -> None:
    """Without a way to look the job up, the claim is FAILED rather than run twice."""
    async def cannot_tell(self, job_key):
        raise NotImplementedError

    monkeypatch.setattr(LocalBackend, "find_submitted", cannot_tell)
    _leave_claim(settings, "half-done")
    async with running_app(settings) as client:
        r = await client.get(f"{BASE}/jobs", headers=auth)
        (job,) = r.json()["value"]
        assert (job["status"], job["raw_status"]) == ("FAILED", INTERRUPTED_RAW_STATUS)


async def test_too_many_waiters_get_503(client, auth, doc, monkeypatch) -> None:
    import jid_service.readers as service_module

    monkeypatch.setattr(service_module, "MAX_WAITERS", 2)
    # a job the JID does not know is echoed unchanged: each wait lasts its timeout
    body = {"jobs": [doc(status="RUNNING")], "timeout": 1.0}
    answers = await asyncio.gather(*(client.post(f"{BASE}/wait", json=body, headers=auth)
                                     for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 503, 503]
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == "too many concurrent waits; retry"


async def test_backend_outage_answers_503_then_recovers(client, auth, doc, settings) -> None:
    """The local backend's state dir disappears (an unmounted file system) and comes back."""
    job = await start(client, doc("Sleeper"), auth)
    # the job must have started first: a runner whose state dir is gone
    # before it claims its job cannot run it at all (it ends FAILED)
    while job["status"] == "SUBMITTED":
        r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 5}, headers=auth)
        job = r.json()["value"][0]
    assert job["status"] == "RUNNING"
    root = settings.state_dir / "local"
    away = settings.state_dir / "local-away"
    root.rename(away)
    try:
        for _ in range(100):
            r = await client.post(f"{BASE}/job_statuses", json=[job], headers=auth)
            if r.status_code == 503:
                break
            await asyncio.sleep(0.05)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert "state dir" in r.json()["error"]
        r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 1},
                              headers=auth)
        assert r.status_code == 503
        r = await client.get("/healthz")
        assert r.status_code == 503 and r.json()["value"]["backend_ok"] is False
    finally:
        away.rename(root)
    for _ in range(200):
        r = await client.post(f"{BASE}/job_statuses", json=[job], headers=auth)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 200
    assert r.json()["value"][0]["status"] == "RUNNING"
    assert (await client.get("/healthz")).status_code == 200
    await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)


def _pollers() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "jid-poller" and not t.done()]


async def test_exactly_one_poller_runs_and_none_outlives_the_app(settings) -> None:
    # two pollers would apply stale snapshots over each other's newer states
    # (a RUNNING job read back as SUBMITTED) and double every backend call
    assert _pollers() == []
    async with running_app(settings):
        assert len(_pollers()) == 1
    await asyncio.sleep(0)
    assert _pollers() == []


async def test_a_local_job_ending_is_seen_without_waiting_for_a_tick(settings, auth, doc) -> None:
    # ticks 60 s apart: the job's end can only be seen this soon because the
    # local backend reports its runner's exit and the poller ticks at once
    slow = settings.model_copy(update={"poll_interval": 60.0})
    async with running_app(slow) as client:
        job = await start(client, doc(), auth)
        done = await wait_final(client, job, auth, timeout=20)
        assert done["status"] == "DONE"


async def test_the_backend_can_nudge_the_poller_from_another_thread(settings) -> None:
    async with running_app(settings.model_copy(update={"poll_interval": 60.0})) as client:
        service = client.app.state.service
        while service.ticks == 0:  # the first tick runs at start-up
            await asyncio.sleep(0.02)
        ticks = service.ticks
        await asyncio.sleep(0.2)
        assert service.ticks == ticks  # nothing due for a minute
        await asyncio.to_thread(service.backend.on_change)
        for _ in range(100):
            if service.ticks > ticks:
                break
            await asyncio.sleep(0.02)
        assert service.ticks == ticks + 1
