"""Benchmark workflow: 12 ``Sleeper`` steps in parallel (``benchmarks/deferral.py``).

Each step sits in its own task group so the task ids are unique
(``s01.Sleeper`` ...); the operator strips the group and runs ``Sleeper``.
The run's conf key ``jid_deferrable`` (true/false) chooses whether the steps
wait in the triggerer or hold a worker slot, so both modes share one DAG.
``lute_bench_parallel_triggerer`` is the same with every step started in the
triggerer (submission included), so no step takes a worker slot before its
job has ended. The baselines are 12 of Airflow's own ``DateTimeSensorAsync``,
ended from the trigger, each waiting the conf key ``seconds`` (default 20)
from when it starts, as a step's job does: ``lute_bench_parallel_sensors``
started in the triggerer (against the steps started there),
``lute_bench_parallel_worker_sensors`` started in a worker and deferring from
it (against the deferrable steps): what Airflow alone needs to start, wait out
and end 12 such waits at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, TaskGroup

from lute.airflow.baseline_sensor import BaselineSensor
from lute.airflow.operator import JIDSlurmOperator

dag_id = f"lute_{Path(__file__).stem}"
PARALLEL_STEPS = 12

_COMMON = {
    "schedule": None,
    "start_date": datetime(2024, 1, 1),
    "catchup": False,
    "max_active_runs": 4,
    "max_active_tasks": PARALLEL_STEPS,
    "tags": ["lute", "benchmark"],
}



def _parallel(dag_id: str, description: str, step: Callable[[], object]) -> DAG:
    """A DAG of PARALLEL_STEPS calls of ``step``, each in its task group ``s01`` ..."""
    with DAG(dag_id=dag_id, description=description, **_COMMON) as parallel:
        for index in range(1, PARALLEL_STEPS + 1):
            with TaskGroup(group_id=f"s{index:02d}"):
                step()
    return parallel


dag = _parallel(
    dag_id, "12 parallel Sleeper steps: deferrable against blocking waits",
    lambda: JIDSlurmOperator(task_id="Sleeper", max_cores=1, poke_interval=30.0),
)
dag_triggerer = _parallel(
    f"{dag_id}_triggerer", "12 parallel Sleeper steps started in the triggerer",
    lambda: JIDSlurmOperator(
        task_id="Sleeper", max_cores=1, poke_interval=30.0, start_in_triggerer=True
    ),
)
# Rendered where the sensor starts (in the triggerer for one started there,
# else in the worker): its wait begins then, as a step's job begins once the
# step has started and submitted it.
_SECONDS_FROM_START = (
    "{{ (macros.datetime.now().astimezone()"
    " + macros.timedelta(seconds=dag_run.conf.get('seconds', 20))).isoformat() }}"
)


def _sensor(start_from_trigger: bool) -> BaselineSensor:
    return BaselineSensor(
        task_id="Sleeper",
        start_from_trigger=start_from_trigger,
        end_from_trigger=True,
        target_time=_SECONDS_FROM_START,
    )


dag_sensors = _parallel(
    f"{dag_id}_sensors",
    "12 parallel DateTimeSensorAsync started in the triggerer: a baseline",
    lambda: _sensor(start_from_trigger=True),
)
dag_worker_sensors = _parallel(
    f"{dag_id}_worker_sensors",
    "12 parallel DateTimeSensorAsync deferring from a worker: a baseline",
    lambda: _sensor(start_from_trigger=False),
)
