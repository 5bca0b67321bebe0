"""Production-shaped Airflow: PostgreSQL metadata database, two triggerers, one killed (-9).

A real Airflow 3 stack on a database of its own on the test PostgreSQL
server runs two ``airflow triggerer`` processes. Six parallel Sleeper steps
defer; once at least three wait, the triggerer holding most of them (``trigger.triggerer_id``
in the metadata database) is killed with SIGKILL, its trigger runner with
it, as when a node is lost. With the heartbeat settings short, the other
triggerer takes the triggers over, each step re-attaches to its running job
(the JID holds one job per step, with the id it had before the kill) and the
run succeeds with no task retried.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lute.launch.airflow_api import AirflowClient
from lute.launch.ports import free_port_block
from lute.launch.stack import Stack
from tests.integration.deploy.waiting import until
from tests.unit.airflow.support import run_conf, write_test_config

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.timeout(900)]

DAG_ID = "lute_two_triggerers"
STEPS = 6
DAG_FILE = f'''\
from datetime import datetime

from airflow.sdk import DAG, TaskGroup

from lute.airflow.operator import JIDSlurmOperator

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         max_active_tasks={STEPS}) as dag:
    for index in range(1, {STEPS + 1}):
        with TaskGroup(group_id=f"s{{index:02d}}"):
            JIDSlurmOperator(task_id="Sleeper", max_cores=1)
'''
HEARTBEATS = {
    # a dead triggerer's triggers are taken over once its job has not
    # heartbeat for the threshold (defaults 5 s and 30 s)
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
    # the server is shared with other tests: few connections per process
    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
}


@pytest.fixture(scope="module")
def metadata_url() -> Iterator[sa.URL]:
    """A fresh database for Airflow on the test PostgreSQL server; dropped afterwards."""
    raw = os.environ.get("LUTE_TEST_PG_URL")
    if not raw:
        pytest.fail("LUTE_TEST_PG_URL is not set: start PostgreSQL with "
                    "launch_scripts/dev/start_postgres.sh and export its output", pytrace=False)
    admin = make_url(raw)
    name = f"lute_airflow_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, metadata_url: sa.URL) -> Iterator[Stack]:
    """Airflow 3 on PostgreSQL with two triggerers, and a JID (local backend)."""
    root = tmp_path_factory.mktemp("two-triggerers")
    dags = root / "dags"
    dags.mkdir()
    (dags / "two_triggerers.py").write_text(DAG_FILE)
    airflow_port = free_port_block(4)
    jid_port = free_port_block(1, exclude=set(range(airflow_port, airflow_port + 4)))
    with Stack(
        root / "stack", airflow_port=airflow_port, jid_port=jid_port, dags_folder=dags,
        metadata_db_url=metadata_url.render_as_string(hide_password=False), triggerers=2,
        extra_env=HEARTBEATS, allowed_config_roots=[str(root)], wait_for_dags=[DAG_ID],
        dag_refresh_s=2, timeout=420.0,
    ) as started:
        yield started


def _holders(db: sa.Engine, run_id: str) -> dict[int | None, int]:
    """How many of the run's deferred steps each triggerer job holds (None: unassigned)."""
    with db.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT t.triggerer_id, count(*) FROM trigger t "
            "JOIN task_instance ti ON ti.trigger_id = t.id "
            "WHERE ti.dag_id = :dag AND ti.run_id = :run GROUP BY t.triggerer_id"),
            {"dag": DAG_ID, "run": run_id}).all()
    return {triggerer: count for triggerer, count in rows}


def test_the_other_triggerer_takes_over_the_steps_of_a_killed_one(
        stack: Stack, metadata_url: sa.URL) -> None:
    assert set(stack.triggerer_jobs) == {"triggerer", "triggerer-2"}
    client = AirflowClient(stack.airflow_url, username=stack.username,
                           password=stack.password, timeout=30.0)
    db = sa.create_engine(metadata_url, poolclass=sa.pool.NullPool)
    try:
        client.login()
        # under the JID's allowed config root (the module's directory)
        config = write_test_config(stack.state_dir.parent / "cfg", sleep_seconds=40)
        conf = run_conf(config, jid_defer_after=0)
        root = conf["ARP_ROOT_JOB_ID"]
        client.unpause(DAG_ID)
        run_id = f"kill-{uuid.uuid4().hex[:10]}"
        client.trigger(DAG_ID, run_id, conf)

        def jid_jobs() -> list[dict]:
            response = httpx.get(f"{stack.jid_url}/jid/ws/jobs", params={"arp_root_job_id": root},
                                 headers={"Authorization": f"Bearer {stack.jid_token}"},
                                 timeout=10)
            response.raise_for_status()
            return response.json()["value"]

        def deferred_and_held() -> dict[int, int] | None:
            # not all at once: on a busy machine the first jobs may end before the last start
            running = [j for j in jid_jobs() if j["status"] == "RUNNING"]
            holders = {t: n for t, n in _holders(db, run_id).items() if t is not None}
            return holders if len(running) >= 3 and sum(holders.values()) >= 3 else None

        holders = until("3 steps deferred, held by a triggerer, their jobs running",
                         deferred_and_held, timeout=240)
        submitted = {j["_id"]: j["tool_id"] for j in jid_jobs()}

        by_job = {job_id: name for name, job_id in stack.triggerer_jobs.items()}
        victim_job = max(holders, key=lambda job_id: holders[job_id])
        survivor_job = next(j for j in by_job if j != victim_job)
        (victim,) = [r for r in stack.running() if r.name == by_job[victim_job]]
        os.killpg(victim.pid, signal.SIGKILL)  # the triggerer and its trigger runner
        until("the killed triggerer to be gone", lambda: not victim.is_alive(), timeout=30)

        # Airflow gives the dead triggerer's triggers to the live one
        def rehomed() -> bool:
            return set(_holders(db, run_id)) == {survivor_job}

        until("the triggers on the other triggerer", rehomed, timeout=90)

        deadline = time.monotonic() + 180
        while (state := client.dag_run(DAG_ID, run_id)["state"]) not in ("success", "failed"):
            assert time.monotonic() < deadline, f"run still {state}"
            time.sleep(0.5)
        tis = client.task_instances(DAG_ID, run_id)
        assert state == "success", [(ti["task_id"], ti["state"]) for ti in tis]
        assert {ti["state"] for ti in tis} == {"success"}
        assert {ti["try_number"] for ti in tis} == {1}, "a step was retried"
        jobs = {j["_id"]: j for j in jid_jobs()}
        # one job per step, and those submitted before the kill kept: re-attached, not resubmitted
        assert len(jobs) == STEPS
        assert {i: jobs[i]["tool_id"] for i in submitted} == submitted
        assert {j["status"] for j in jobs.values()} == {"DONE"}
    finally:
        client.close()
        db.dispose()
