"""The single poller: one backend.statuses() call per tick however many clients ask."""

from __future__ import annotations

import asyncio

from jid_service.store import INTERRUPTED_RAW_STATUS, JobStore

from .conftest import running_app
from .test_api import BASE, start


def _sample(client, name: str, **labels: str) -> float:
    value = client.app.state.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_clients_never_call_the_backend(client, auth, doc) -> None:
    jobs = [await start(client, doc("Sleeper"), auth) for _ in range(10)]
    service = client.app.state.service
    calls_before = _sample(client, "jid_backend_calls_total", operation="statuses", outcome="ok")
    ticks_before = service.ticks

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
    ticks = service.ticks - ticks_before
    assert calls <= ticks + 1  # +1: a tick may be between its call and its count
    assert calls < 200
    for job in jobs:
        await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)


async def test_start_marks_interrupted_submissions_failed(settings, auth) -> None:
    """A claim left by a daemon that died mid-submission is FAILED, never resubmitted."""
    store = JobStore(settings.effective_db_url)
    doc = {"_id": "half-done", "experiment": "exp1", "run_num": "1",
           "def": {"_id": "d", "name": "Tester"}}
    assert store.claim(doc, "exp1", "alice")
    store.close()
    async with running_app(settings) as client:
        r = await client.get(f"{BASE}/jobs", headers=auth)
        (job,) = r.json()["value"]
        assert (job["status"], job["raw_status"]) == ("FAILED", INTERRUPTED_RAW_STATUS)


async def test_too_many_waiters_get_503(client, auth, doc, monkeypatch) -> None:
    import jid_service.service as service_module

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
    assert r.json()["value"][0]["status"] in ("SUBMITTED", "RUNNING")
    assert (await client.get("/healthz")).status_code == 200
    await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)
