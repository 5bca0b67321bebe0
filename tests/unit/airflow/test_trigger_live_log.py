"""A deferred step's job log, shown by the trigger while the job runs (real JID in-process).

The job is the real ``Sleeper`` managed task (a line every 0.5 s) run by the
JID's local backend; the trigger's log records are what Airflow 3 writes to
the task's log.
"""

from __future__ import annotations

import httpx
import pytest

from lute.airflow import live_log
from lute.airflow.client import AsyncJIDClient
from lute.airflow.live_log import LiveLog, afinal_lines
from lute.airflow.step_outcome import task_log_line
from tests.unit.airflow.support import in_process_jid
from tests.unit.airflow.test_trigger import BASE, _events, _jid_connection, _submit, _trigger

pytestmark = pytest.mark.timeout(120)
__all__ = ["_jid_connection"]  # the connection fixture, used here too


class Recorder:
    """Stands in for the trigger's logger: every message, in order."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __getattr__(self, _level: str):
        def record(fmt: str, *args: object, **_kw: object) -> None:
            self.messages.append(fmt % args if args else fmt)

        return record


def _recorded(jid, job: dict, **kw) -> tuple[object, Recorder]:
    trigger = _trigger(jid, job, **kw)
    trigger._log = recorder = Recorder()
    return trigger, recorder


async def _job_log(jid, job: dict) -> str:
    async with AsyncJIDClient(
        BASE, token=jid.token, transport=httpx.ASGITransport(app=jid.app)
    ) as client:
        return await client.job_log_file(job)


async def test_the_trigger_shows_the_job_log_while_it_runs_and_hands_over_the_rest(
    tmp_path,
) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=4.0) as jid:
        job = await _submit(jid, "Sleeper")
        trigger, recorder = _recorded(jid, job, log_interval=1.0)
        (event,) = await _events(trigger)
        whole = await _job_log(jid, event["job"])
        # the worker's end-of-step dump goes on from the event's offset
        async with AsyncJIDClient(
            BASE, token=jid.token, transport=httpx.ASGITransport(app=jid.app)
        ) as client:
            rest = await afinal_lines(
                LiveLog("Sleeper", 1.0, start=event["log_offset"]), client, event["job"], whole
            )
    assert event["status"] == "finished" and event["job"]["status"] == "DONE"
    messages = recorder.messages
    ended = next(i for i, m in enumerate(messages) if m.endswith("RUNNING -> DONE"))
    live = [m for m in messages[:ended] if m.startswith("Sleeper: ")]
    # lines came while the job ran, each once, and the rest adds what they did not show
    assert any("Sleep: tick" in m for m in live), messages
    assert event["log_offset"] > 0
    assert live + rest == [task_log_line("Sleeper", line) for line in whole.splitlines()]


async def test_log_reads_failing_never_fail_the_wait(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=3.0) as jid:
        job = await _submit(jid, "Sleeper")
        jid.asgi.fail(lambda path: path.endswith("/job_log"), count=1000)
        trigger, recorder = _recorded(jid, job, log_interval=1.0)
        (event,) = await _events(trigger)
    assert event["status"] == "finished" and event["job"]["status"] == "DONE"
    assert jid.asgi.refused >= 1
    said = [m for m in recorder.messages if "live log of Sleeper unavailable" in m]
    assert len(said) == 1  # once per outage, not once per read
    assert event["log_offset"] == 0  # nothing shown: the worker dumps the log's end
    # the trigger gave its log client back when it ended
    assert all(not pool.clients._users for pool in live_log._pools.values())


async def test_interval_zero_reads_no_log_while_waiting(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=2.0) as jid:
        job = await _submit(jid, "Sleeper")
        jid.asgi.fail(lambda path: path.endswith("/job_log"), count=1000)
        (event,) = await _events(_trigger(jid, job, log_interval=0))
    assert event["status"] == "finished"
    assert jid.asgi.refused == 0  # not one log read was tried
