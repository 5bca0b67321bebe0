"""A stack's triggerers beyond the first: their ports, their start, their Airflow jobs.

Production runs two or more triggerers, so the deferred steps of one that
dies move to another. A :class:`~lute.launch.stack.Stack` with
``triggerers=N`` starts ``triggerer-2`` ... ``triggerer-N`` after the first is
healthy, one at a time, each with its own trigger log server port
(``--airflow-port + 1 + n``), and waits for each one's triggerer job to
heartbeat, so it knows which Airflow job (``trigger.triggerer_id``) is which
process: Airflow's job table tells the processes of one host apart by id only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from lute.launch.processes import ProcessRecord
from lute.launch.readiness import Startup, airflow_session, new_triggerer_job

if TYPE_CHECKING:
    from lute.launch.stack import Stack

FIRST = "triggerer"


def more_triggerer_ports(airflow_port: int, count: int) -> dict[str, int]:
    """The trigger log server port of each triggerer after the first, by what listens there."""
    return {
        f"Airflow triggerer-{n} log server (--airflow-port + {n + 1})": airflow_port + 1 + n
        for n in range(2, count + 1)
    }


def start_more_triggerers(
    stack: Stack,
    startup: Startup,
    records: list[ProcessRecord],
    argv: list[str],
    env: Mapping[str, str],
) -> dict[str, int]:
    """Start triggerers 2..N of ``stack`` with ``argv``; every triggerer's job id, by name.

    The new processes are added to ``records`` (so the start-up wait watches them).
    """
    jobs: dict[str, int] = {}
    with airflow_session(stack.airflow_url, stack.username, stack.password) as api:
        jobs[FIRST] = new_triggerer_job(startup, api, set())
        for n in range(2, stack.triggerers + 1):
            name = f"{FIRST}-{n}"
            port = stack.airflow_port + 1 + n
            own = dict(env, AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(port))
            records.append(stack._spawn(name, argv, own))
            # each one gets the stack's whole start-up time: they start one by one
            own_start = replace(startup, started=time.monotonic())
            jobs[name] = new_triggerer_job(own_start, api, set(jobs.values()))
    return jobs
