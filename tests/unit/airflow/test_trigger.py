"""JIDJobTrigger against the real JID app in-process (httpx ASGI transport, local backend).

Jobs are real managed tasks run by the JID's local backend; an ASGI wrapper
answers 503 to chosen requests to play a JID outage.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import types
import weakref

import httpx
import pytest

from lute.airflow.client import AsyncJIDClient
from lute.airflow.control_document import StepIdentity, build_control_document
from lute.airflow.trigger import JIDJobTrigger
from tests.unit.airflow.support import in_process_jid, run_conf

pytestmark = pytest.mark.timeout(120)

BASE = "http://jid.test"
CONN_ID = "jid_unit_trigger"


@pytest.fixture(autouse=True)
def _jid_connection(monkeypatch) -> None:
    # The trigger resolves the JID through its connection, as in the triggerer;
    # the token comes from the connection unless a test hands one over.
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "jid", "host": BASE})
    )


def _trigger_class(asgi) -> type[JIDJobTrigger]:
    class InProcessTrigger(JIDJobTrigger):
        transport = httpx.ASGITransport(app=asgi)

    return InProcessTrigger


def _doc(jid, task: str, try_number: int = 1) -> dict:
    return build_control_document(
        run_conf(jid.config),
        task,
        StepIdentity("lute_unit", f"run-{task}", task, try_number),
        user="tester",
    )


async def _submit(jid, task: str) -> dict:
    async with AsyncJIDClient(
        BASE, token=jid.token, transport=httpx.ASGITransport(app=jid.app)
    ) as client:
        return await client.start_job(_doc(jid, task))


def _trigger(jid, job: dict, **kw) -> JIDJobTrigger:
    cls = _trigger_class(jid.asgi)
    kw.setdefault("wait_timeout", 5.0)
    kw.setdefault("initial_backoff", 0.05)
    kw.setdefault("max_backoff", 0.2)
    # The connection carries this JID's token (the fixture restores the variable).
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "jid", "host": BASE, "password": jid.token}
    )
    return cls(job=job, jid_conn_id=CONN_ID, **kw)


async def _events(trigger: JIDJobTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


async def test_sleeper_goes_submitted_running_done(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=1.5) as jid:
        job = await _submit(jid, "Sleeper")
        assert job["status"] in ("SUBMITTED", "RUNNING")
        assert job["tool_id"]
        events = await _events(_trigger(jid, job))
    assert len(events) == 1
    assert events[0]["status"] == "finished"
    assert events[0]["job"]["status"] == "DONE"
    assert events[0]["job"]["exit_code"] == 0
    # The JID's answers to the trigger's long polls: RUNNING seen, then DONE, nothing after.
    seen = [answer[0] for answer in jid.asgi.wait_answers]
    assert seen[-1] == "DONE"
    assert "RUNNING" in seen
    assert seen.index("RUNNING") < seen.index("DONE")
    # Long polls, not a tight loop: one answer per status change (plus at most a timeout).
    assert len(seen) <= 4


async def test_failing_task_finishes_failed(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid:
        job = await _submit(jid, "FailingTester")
        events = await _events(_trigger(jid, job))
    assert events[0]["status"] == "finished"
    assert events[0]["job"]["status"] == "FAILED"
    assert events[0]["job"]["exit_code"] not in (0, None)


async def test_on_kill_cancels_the_job_and_the_wait_ends_exited(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=60) as jid:
        job = await _submit(jid, "Sleeper")
        trigger = _trigger(jid, job)
        waiting = asyncio.create_task(_events(trigger))
        async with AsyncJIDClient(
            BASE, token=jid.token, transport=httpx.ASGITransport(app=jid.app)
        ) as client:
            for _ in range(100):
                (fresh,) = await client.job_statuses([job])
                if fresh["status"] == "RUNNING":
                    break
                await asyncio.sleep(0.1)
            assert fresh["status"] == "RUNNING"
            await _trigger(jid, job).on_kill()
            events = await asyncio.wait_for(waiting, 30)
            (after,) = await client.job_statuses([job])
    assert events[0]["status"] == "finished"
    assert events[0]["job"]["status"] == "EXITED"
    assert after["status"] == "EXITED"


async def test_outage_is_waited_out_with_backoff(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=1.0) as jid:
        job = await _submit(jid, "Sleeper")
        jid.asgi.fail(lambda path: path.endswith("/wait"), count=5)
        events = await _events(_trigger(jid, job))
    assert jid.asgi.refused == 5
    assert events[0]["status"] == "finished"
    assert events[0]["job"]["status"] == "DONE"


async def test_outage_longer_than_allowed_is_an_error_event(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=1.0) as jid:
        job = await _submit(jid, "Sleeper")
        jid.asgi.fail(lambda path: path.endswith("/wait"), count=10_000)
        events = await _events(_trigger(jid, job, outage_timeout=0.5))
    assert events[0]["status"] == "error"
    assert "unavailable" in events[0]["message"]
    assert jid.asgi.refused >= 2


async def test_refused_token_is_an_error_event_without_the_token(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid:
        job = await _submit(jid, "Tester")
        cls = _trigger_class(jid.asgi)
        bad = "not-a-valid-token"
        events = await _events(cls(job=job, jid_conn_id=CONN_ID, token=bad, wait_timeout=1))
    assert events[0]["status"] == "error"
    assert "401" in events[0]["message"]
    assert bad not in events[0]["message"]


async def test_serializes_round_trip_and_hides_token() -> None:
    job = {"_id": "abc", "tool_id": "7", "status": "RUNNING", "experiment": "x"}
    trigger = JIDJobTrigger(job=job, jid_conn_id="jid_x", token="s3cret-token")
    classpath, kwargs = trigger.serialize()
    assert classpath == "lute.airflow.trigger.JIDJobTrigger"
    again = JIDJobTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert "s3cret-token" not in repr(trigger)


class _RunContext:
    """What the triggerer gives a trigger started from a task: a task instance with context."""

    def __init__(self, conf: dict, task_id: str) -> None:
        self.dag_id, self.run_id, self.task_id = "lute_unit", f"start-{task_id}", task_id
        self.try_number, self.map_index = 1, -1
        self.conf = conf

    def get_template_context(self) -> dict:
        return {"dag_run": type("DagRun", (), {"conf": self.conf})()}


async def test_started_in_the_triggerer_it_submits_then_waits(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=0.5) as jid:
        trigger = _trigger_class(jid.asgi)(
            submit={"max_cores": 1, "user": "tester"}, jid_conn_id=CONN_ID, token=jid.token,
            wait_timeout=5.0,
        )
        context = _RunContext(run_conf(jid.config), "s01.Sleeper")
        trigger._task_instance = context
        events = await _events(trigger)
        again = await _events(trigger)
    assert events[0]["status"] == "finished"
    job = events[0]["job"]
    assert job["status"] == "DONE"
    assert job["def"]["parameters"].startswith("--taskname Sleeper --config ")
    assert job["_id"] == StepIdentity("lute_unit", "start-s01.Sleeper", "s01.Sleeper", 1).uuid(
        "job"
    )
    # Running the same try again finds the same job instead of submitting a second one.
    assert again[0]["job"]["tool_id"] == job["tool_id"]


async def test_started_in_the_triggerer_it_uses_the_context_airflow_rendered_with(
    tmp_path, monkeypatch
) -> None:
    # The triggerer renders a trigger started from a task with the context it
    # built; the document is made from that one, on the loop: no thread hop
    # (which queues when many steps start at once) and no second context.
    async with in_process_jid(tmp_path) as jid:
        trigger = _trigger_class(jid.asgi)(
            submit={"user": "tester"}, jid_conn_id=CONN_ID, token=jid.token,
        )
        run = _RunContext(run_conf(jid.config, dryrun=True), "Tester")
        context = run.get_template_context()
        run.get_template_context = None  # type: ignore[assignment]  # building one now fails
        trigger._task_instance = run
        trigger.render_template_fields(context)
        hops: list[object] = []
        real_to_thread = asyncio.to_thread

        async def counted(func, *args, **kwargs):
            hops.append(func)
            return await real_to_thread(func, *args, **kwargs)

        monkeypatch.setattr(asyncio, "to_thread", counted)
        events = await _events(trigger)
    assert events[0]["status"] == "rendered", events[0]
    assert "Tester" in " ".join(events[0]["rendering"]["argv"])
    assert not any(getattr(hop, "__name__", "") == "_submission" for hop in hops), hops


class _Dag:
    """Stands for the deserialized DAG (weakly referenceable, as Airflow's is)."""


async def test_started_in_the_triggerer_it_lets_go_of_the_dag_once_its_job_is_built(
    tmp_path,
) -> None:
    # Airflow hands each such trigger its own copy of the whole DAG, through the
    # context and the task instance's task, and keeps both while the trigger
    # runs: N waiting steps would hold N copies of N tasks.
    dag = _Dag()
    dag_alive = weakref.ref(dag)
    task = types.SimpleNamespace(dag=dag)
    del dag
    async with in_process_jid(tmp_path, sleep_seconds=0.2) as jid:
        trigger = _trigger_class(jid.asgi)(
            submit={"user": "tester"}, jid_conn_id=CONN_ID, token=jid.token, wait_timeout=5.0,
        )
        ti = _RunContext(run_conf(jid.config), "s01.Sleeper")
        ti.task = task  # type: ignore[attr-defined]
        context = {**ti.get_template_context(), "dag": task.dag, "task": task, "ti": ti}
        del task
        trigger._task_instance = ti
        trigger.render_template_fields(context)
        events = await _events(trigger)
    gc.collect()
    assert events[0]["status"] == "finished", events[0]
    assert events[0]["job"]["status"] == "DONE"
    # the job is still the one of this task instance's try
    assert events[0]["job"]["_id"] == StepIdentity(
        "lute_unit", "start-s01.Sleeper", "s01.Sleeper", 1
    ).uuid("job")
    assert context == {}
    assert dag_alive() is None


async def test_started_in_the_triggerer_a_dry_run_renders_only(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid:
        trigger = _trigger_class(jid.asgi)(
            submit={"user": "tester"}, jid_conn_id=CONN_ID, token=jid.token,
            end_from_trigger=True,
        )
        trigger._task_instance = _RunContext(run_conf(jid.config, dryrun=True), "Tester")
        events = await _events(trigger)
        async with AsyncJIDClient(
            BASE, token=jid.token, transport=httpx.ASGITransport(app=jid.app)
        ) as client:
            listed = await client.request("GET", "jobs", None)
    # The XCom push needs the triggerer's supervisor; without it the worker pushes.
    assert events[0]["status"] == "rendered", events[0]
    assert "Tester" in " ".join(events[0]["rendering"]["argv"])
    assert listed == []


async def test_started_in_the_triggerer_without_context_is_an_error_event() -> None:
    trigger = JIDJobTrigger(submit={}, token="t")
    events = await _events(trigger)
    assert events[0]["status"] == "error"
    assert "context" in events[0]["message"]


async def test_end_from_trigger_outside_a_triggerer_leaves_the_end_to_the_worker(
    tmp_path,
) -> None:
    # No triggerer to relay the XCom pushes (no task instance): the plain event,
    # so the worker resumes and pushes the log itself. The real triggerer path
    # is covered by tests/integration/airflow/test_real_airflow.py.
    async with in_process_jid(tmp_path, sleep_seconds=0.2) as jid:
        job = await _submit(jid, "Sleeper")
        (event,) = [event async for event in _trigger(jid, job, end_from_trigger=True).run()]
    assert type(event).__name__ == "TriggerEvent"
    assert event.payload["status"] == "finished"
    assert event.payload["job"]["status"] == "DONE"


async def test_end_from_trigger_leaves_a_failed_job_to_the_worker(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid:
        job = await _submit(jid, "FailingTester")
        (event,) = [event async for event in _trigger(jid, job, end_from_trigger=True).run()]
    # A plain event: the worker resumes and raises with the log's last lines.
    assert type(event).__name__ == "TriggerEvent"
    assert event.payload["status"] == "finished"
    assert event.payload["job"]["status"] == "FAILED"


async def test_end_from_trigger_falls_back_to_the_worker_without_a_log(tmp_path) -> None:
    async with in_process_jid(tmp_path, sleep_seconds=0.2) as jid:
        job = await _submit(jid, "Sleeper")
        jid.asgi.fail(lambda path: path.endswith("/job_log_file"), count=10_000)
        (event,) = [event async for event in _trigger(jid, job, end_from_trigger=True).run()]
    assert type(event).__name__ == "TriggerEvent"
    assert event.payload["status"] == "finished"
    assert event.payload["job"]["status"] == "DONE"
    assert jid.asgi.refused >= 1
