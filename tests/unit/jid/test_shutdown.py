"""A stopping JID: open waits answered at once, new requests 503, submissions in flight finish."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import httpx
import uvicorn

from jid_service.app import create_app
from jid_service.backends.local import LocalBackend
from jid_service.shutdown import GracefulServer, StopState
from jid_service.store import JobStore

from .conftest import running_app
from .test_api import BASE, start

HANG_GUARD = 20.0
"""Far above any answer here, far below the waits' own timeouts: only a hang reaches it."""


async def _running(client: httpx.AsyncClient, job: dict[str, Any],
                   auth: dict[str, str]) -> dict[str, Any]:
    while job["status"] != "RUNNING":
        r = await client.post(f"{BASE}/wait", json={"jobs": [job], "timeout": 5}, headers=auth)
        job = r.json()["value"][0]
    return job


async def test_open_waits_answer_at_once_with_the_current_state(settings, auth, doc) -> None:
    async with running_app(settings) as client:
        job = await _running(client, await start(client, doc("Sleeper"), auth), auth)
        waits = [asyncio.create_task(client.post(
            f"{BASE}/wait", json={"jobs": [job], "timeout": 60}, headers=auth, timeout=90))
            for _ in range(5)]
        await asyncio.sleep(0.3)  # let the waits reach the poller
        assert not any(w.done() for w in waits)
        client.app.state.stop.begin()
        answers = await asyncio.wait_for(asyncio.gather(*waits), HANG_GUARD)
        for r in answers:
            assert r.status_code == 200
            (fresh,) = r.json()["value"]
            assert (fresh["_id"], fresh["status"]) == (job["_id"], "RUNNING")
        metric = client.app.state.metrics.registry.get_sample_value("jid_stopping")
        assert metric == 1


async def test_new_requests_while_stopping_get_503_with_retry_after(client, auth, doc) -> None:
    client.app.state.stop.begin()
    for method, path, body in (("POST", f"{BASE}/exp1/start_job", doc()),
                               ("POST", f"{BASE}/wait", {"jobs": [doc()], "timeout": 5}),
                               ("GET", "/healthz", None)):
        r = await client.request(method, path, json=body, headers=auth)
        assert r.status_code == 503, (path, r.text)
        assert r.headers["retry-after"] == "2"
        assert r.headers["connection"] == "close"
        assert r.json() == {"success": False, "value": None,
                            "error": "the JID is restarting; retry"}
    r = await client.get(f"{BASE}/jobs", headers=auth)
    assert r.status_code == 503


async def _asgi_post(app: Any, path: str, body: Any, headers: dict[str, str],
                     messages: list[dict[str, Any]]) -> None:
    """One request straight through the ASGI interface, as uvicorn makes it."""
    payload = json.dumps(body).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items())],
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the client waits
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)


async def test_a_request_cancelled_at_the_stop_timeout_answers_503_not_500(
        client, auth, doc) -> None:
    """uvicorn cancels what is left at its graceful-shutdown timeout: 503, never 500."""
    job = await _running(client, await start(client, doc("Sleeper"), auth), auth)
    messages: list[dict[str, Any]] = []
    task = asyncio.create_task(_asgi_post(
        client.app, f"{BASE}/wait", {"jobs": [job], "timeout": 60}, auth, messages))
    await asyncio.sleep(0.3)
    assert not task.done()
    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
    await asyncio.wait({task}, timeout=HANG_GUARD)
    assert task.done()
    start_message = next(m for m in messages if m["type"] == "http.response.start")
    assert start_message["status"] == 503
    headers = dict(start_message["headers"])
    assert headers[b"retry-after"] == b"2"
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert json.loads(body)["error"] == "the JID stopped before answering; retry"
    await client.post(f"{BASE}/exp1/kill_job", json=job, headers=auth)


async def test_a_submission_in_flight_finishes_though_its_request_is_cut_off(
        settings, auth, doc, monkeypatch) -> None:
    """The stop lets the backend's submit finish and records the job: nothing is lost."""
    submitting = asyncio.Event()
    release = asyncio.Event()
    original = LocalBackend.submit

    async def slow_submit(self, spec):
        submitting.set()
        await release.wait()
        return await original(self, spec)

    monkeypatch.setattr(LocalBackend, "submit", slow_submit)
    control = doc("Tester")
    app = create_app(settings)
    messages: list[dict[str, Any]] = []
    async with app.router.lifespan_context(app):
        request = asyncio.create_task(
            _asgi_post(app, f"{BASE}/exp1/start_job", control, auth, messages))
        await asyncio.wait_for(submitting.wait(), HANG_GUARD)
        app.state.stop.begin()
        request.cancel()
        await asyncio.wait({request}, timeout=HANG_GUARD)
        start_message = next(m for m in messages if m["type"] == "http.response.start")
        assert start_message["status"] == 503
        # the lifespan's end drains the submission once the backend answers
        asyncio.get_running_loop().call_later(0.2, release.set)
    store = JobStore(settings.effective_db_url)
    try:
        record = store.get(control["_id"])
    finally:
        store.close()
    assert record is not None and record.tool_id, record
    async with running_app(settings) as client:
        r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=auth)
        assert r.status_code == 200
        assert r.json()["value"]["tool_id"] == record.tool_id


async def test_the_signal_begins_the_stop_and_is_not_raised_again() -> None:
    """SIGTERM stops uvicorn and the app at once; the process then exits 0, not by SIGTERM."""
    stop = StopState()
    released: list[bool] = []
    stop.arm(lambda: released.append(True))
    server = GracefulServer(uvicorn.Config(app=create_app_stub), stop)
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.sleep(0)
    assert server.should_exit and stop.stopping and released == [True]
    assert not server.force_exit
    assert server._captured_signals == []  # uvicorn re-raises what it captured
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit


async def create_app_stub(scope, receive, send) -> None:  # pragma: no cover - never served
    """An ASGI app for a server that is never started."""
