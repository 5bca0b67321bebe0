"""Waiting for a just-started dev stack: every component healthy, the needed DAGs parsed.

Each wait ends early, with a :class:`StackError` that quotes the log of the
culprit, when a recorded process exits or the start-up deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from lute.airflow.client import bearer
from lute.launch.processes import ProcessRecord, log_tail

HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


class StackError(RuntimeError):
    """A stack component failed to start or become healthy."""


@dataclass(frozen=True)
class Startup:
    """The processes being started and how long they have to become ready."""

    records: Sequence[ProcessRecord]
    started: float
    """``time.monotonic()`` when the start began."""
    timeout: float
    reap: Callable[[], None]
    """Collects exited children, so a dead process is seen as dead."""

    @property
    def deadline(self) -> float:
        """When the wait gives up (monotonic clock)."""
        return self.started + self.timeout

    def dead(self) -> list[ProcessRecord]:
        """The recorded processes that have exited."""
        self.reap()
        return [r for r in self.records if not r.is_alive()]


def wait_healthy(startup: Startup, airflow_url: str, jid_url: str) -> None:
    """Wait until the JID, Airflow's components and its execution API answer healthy."""
    pending = {"airflow", "execution", "jid"}
    last = "not started"
    with httpx.Client(timeout=5.0) as client:
        delay = 0.2
        while pending:
            for rec in startup.dead():
                raise StackError(
                    f"{rec.name} exited during start-up; last lines of "
                    f"{rec.log_path}:\n{log_tail(rec.log_path)}"
                )
            if time.monotonic() > startup.deadline:
                names = ", ".join(sorted(pending))
                tails = "\n".join(
                    f"--- {r.name} ({r.log_path}):\n{log_tail(r.log_path, 10)}"
                    for r in startup.records
                )
                raise StackError(
                    f"not healthy after {startup.timeout:.0f} s: {names} ({last})\n{tails}"
                )
            try:
                if "jid" in pending:
                    r = client.get(f"{jid_url}/healthz")
                    if r.status_code == 200:
                        pending.discard("jid")
                    else:
                        last = f"jid /healthz {r.status_code}"
                if "airflow" in pending:
                    r = client.get(f"{airflow_url}/api/v2/monitor/health")
                    if r.status_code == 200:
                        body = r.json()
                        bad = [
                            k for k in HEALTH_KEYS if (body.get(k) or {}).get("status") != "healthy"
                        ]
                        if not bad:
                            pending.discard("airflow")
                        else:
                            last = f"airflow components not healthy yet: {bad}"
                    else:
                        last = f"airflow health {r.status_code}"
                if "execution" in pending and "airflow" not in pending:
                    # the first /execution/ call stalls for seconds: warm it
                    # here rather than inside the first task
                    r = client.get(f"{airflow_url}/execution/health", timeout=30.0)
                    if r.status_code < 500:
                        pending.discard("execution")
            except (httpx.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if pending:
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)


def wait_dags(
    startup: Startup,
    airflow_url: str,
    username: str,
    password: str,
    dag_ids: Sequence[str],
    dag_processor_log: Path,
) -> None:
    """Wait until Airflow knows every DAG of ``dag_ids``."""
    # a just-started dag-processor may not have parsed every file yet; a
    # launch right after `up` would then be told the workflow does not exist
    if not dag_ids:
        return
    with airflow_session(airflow_url, username, password) as client:
        missing = list(dag_ids)
        while missing:
            missing = [d for d in missing if client.get(f"/api/v2/dags/{d}").status_code != 200]
            if not missing:
                break
            dead = [r.name for r in startup.dead()]
            if dead or time.monotonic() > startup.deadline:
                raise StackError(
                    f"DAGs not parsed: {', '.join(missing)}"
                    + (f" ({', '.join(dead)} exited)" if dead else "")
                    + f"; last lines of {dag_processor_log}:\n{log_tail(dag_processor_log)}"
                )
            time.sleep(0.5)


@contextmanager
def airflow_session(airflow_url: str, username: str, password: str) -> Iterator[httpx.Client]:
    """A client of Airflow's REST API, logged in with the stack's admin user."""
    with httpx.Client(base_url=airflow_url, timeout=10.0) as client:
        tok = client.post("/auth/token", json={"username": username, "password": password})
        tok.raise_for_status()
        client.headers["Authorization"] = bearer(tok.json()["access_token"]) or ""
        yield client


def alive_triggerer_jobs(api: httpx.Client) -> set[int]:
    """The ids of the triggerer jobs that heartbeat (Airflow's ``is_alive``)."""
    params = {"job_type": "TriggererJob", "is_alive": "true", "limit": 100}
    response = api.get("/api/v2/jobs", params=params)
    response.raise_for_status()
    return {int(job["id"]) for job in response.json()["jobs"]}


def new_triggerer_job(startup: Startup, api: httpx.Client, known: set[int]) -> int:
    """The id of the one alive triggerer job not in ``known``, once there is exactly one."""
    while True:
        new = alive_triggerer_jobs(api) - known
        if len(new) == 1:
            return new.pop()
        dead = startup.dead()
        if dead or time.monotonic() > startup.deadline or len(new) > 1:
            why = (f"{dead[0].name} exited" if dead else
                   f"{len(new)} new triggerer jobs at once" if new else "no new triggerer job")
            tails = "\n".join(f"--- {r.name}:\n{log_tail(r.log_path, 10)}" for r in startup.records)
            raise StackError(f"triggerer not ready: {why}\n{tails}")
        time.sleep(0.3)
