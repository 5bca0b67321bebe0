"""Triggers of one process share one ``/wait`` per JID: against the real JID app in-process.

An ASGI wrapper counts the ``/wait`` requests, how many run at once and the
jobs each one carries.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest

from lute.airflow.client import AsyncJIDClient
from lute.airflow.control_document import StepIdentity, build_control_document
from lute.airflow.trigger import JIDJobTrigger
from tests.unit.airflow.support import in_process_jid, run_conf

pytestmark = pytest.mark.timeout(120)

BASE = "http://jid.test"
CONN_ID = "jid_unit_shared_wait"


class WaitCounter:
    """Passes requests to the JID app, recording each ``/wait``'s jobs and the overlap."""

    def __init__(self, app) -> None:
        self.app = app
        self.waits: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/wait"):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.waits.append([doc["_id"] for doc in json.loads(body)["jobs"]])
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1


def _doc(jid, task: str, run: str) -> dict:
    return build_control_document(
        run_conf(jid.config), task, StepIdentity("lute_unit", run, task, 1), user="tester"
    )


async def _submit(jid, task: str, run: str) -> dict:
    async with AsyncJIDClient(
        BASE, token=jid.token, transport=httpx.ASGITransport(app=jid.app)
    ) as client:
        return await client.start_job(_doc(jid, task, run))


def _trigger_class(asgi) -> type[JIDJobTrigger]:
    class InProcessTrigger(JIDJobTrigger):
        transport = httpx.ASGITransport(app=asgi)

    return InProcessTrigger


@pytest.fixture(autouse=True)
def _jid_connection(monkeypatch) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "jid", "host": BASE})
    )


def _with_token(jid) -> None:
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "jid", "host": BASE, "password": jid.token}
    )


async def _final(trigger: JIDJobTrigger) -> dict:
    (event,) = [event.payload async for event in trigger.run()]
    return event


async def test_many_triggers_share_one_wait(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=1.0) as jid:
        _with_token(jid)
        counter = WaitCounter(jid.app)
        cls = _trigger_class(counter)
        jobs = [await _submit(jid, "Sleeper", f"run-{i}") for i in range(6)]
        triggers = [cls(job=job, jid_conn_id=CONN_ID, wait_timeout=5.0) for job in jobs]
        events = await asyncio.gather(*(_final(t) for t in triggers))
    assert [e["status"] for e in events] == ["finished"] * 6
    assert {e["job"]["status"] for e in events} == {"DONE"}
    # Never one request per step: one wait at a time, carrying every step still waiting.
    assert counter.most_in_flight == 1
    ids = {job["_id"] for job in jobs}
    assert set(counter.waits[0]) == ids
    assert all(set(wait) <= ids for wait in counter.waits)


async def test_a_cancelled_trigger_stops_being_followed(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=2.0) as jid:
        _with_token(jid)
        counter = WaitCounter(jid.app)
        cls = _trigger_class(counter)
        kept = await _submit(jid, "Sleeper", "run-kept")
        gone = await _submit(jid, "Sleeper", "run-gone")
        gone_task = asyncio.ensure_future(_final(cls(job=gone, jid_conn_id=CONN_ID)))
        kept_task = asyncio.ensure_future(_final(cls(job=kept, jid_conn_id=CONN_ID)))
        while not counter.waits or len(counter.waits[-1]) < 2:
            await asyncio.sleep(0.05)
        gone_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone_task
        asked_before = len(counter.waits)
        event = await kept_task
    assert event["status"] == "finished"
    assert event["job"]["status"] == "DONE"
    # The waits sent after the cancellation (the job's next status change) leave it out.
    later = counter.waits[asked_before:]
    assert later
    assert all(gone["_id"] not in wait for wait in later[1:])
    assert kept["_id"] in later[-1]


async def test_a_refused_job_fails_alone(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=1.0) as jid:
        _with_token(jid)
        counter = WaitCounter(jid.app)
        cls = _trigger_class(counter)
        good = await _submit(jid, "Sleeper", "run-good")
        # A document the JID refuses outright (a control character in a field):
        # the whole request is answered 4xx, so the waiter must find out whose it is.
        bad = dict(good, _id="00000000-0000-0000-0000-000000000000", experiment="bad\x01exp")
        events = await asyncio.gather(
            _final(cls(job=good, jid_conn_id=CONN_ID, wait_timeout=5.0)),
            _final(cls(job=bad, jid_conn_id=CONN_ID, wait_timeout=5.0)),
        )
    assert events[0]["status"] == "finished"
    assert events[0]["job"]["status"] == "DONE"
    assert events[1]["status"] == "error"
    assert "experiment" in events[1]["message"]
