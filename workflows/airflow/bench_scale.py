"""Benchmark workflows: many steps waiting at once on one triggerer (``benchmarks/scale.py``).

``lute_bench_scale``: ``LUTE_BENCH_SCALE_STEPS`` (default 50) ``Sleeper``
steps in parallel, each started in the triggerer, so every step waits there
for its job. ``lute_bench_scale_sensors``: as many of Airflow's own deferrable
``DateTimeSensorAsync``, all waiting for the run's start plus the conf key
``seconds`` (default 60) and ended from the trigger: the baseline for the
same triggerer.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG, TaskGroup

from lute.airflow.operator import JIDSlurmOperator
from lute.airflow.trigger_end import EndFromTriggerOption


class _Sensor(EndFromTriggerOption, DateTimeSensorAsync):
    """The baseline sensor, ending from its trigger where Airflow allows it, as our steps do.

    With listener plugins Airflow refuses a DAG whose tasks end from the
    trigger; this sensor then ends in the worker, so the DAG file still parses.
    """

dag_id = f"lute_{Path(__file__).stem}"
STEPS = int(os.environ.get("LUTE_BENCH_SCALE_STEPS", "50"))

_COMMON = {
    "schedule": None,
    "start_date": datetime(2024, 1, 1),
    "catchup": False,
    "max_active_runs": 1,
    "max_active_tasks": STEPS,
    "tags": ["lute", "benchmark"],
}

with DAG(
    dag_id=dag_id,
    description=f"{STEPS} Sleeper steps waiting at once in the triggerer",
    **_COMMON,
) as dag:
    for index in range(1, STEPS + 1):
        with TaskGroup(group_id=f"s{index:03d}"):
            JIDSlurmOperator(
                task_id="Sleeper", max_cores=1, poke_interval=30.0, start_in_triggerer=True
            )

with DAG(
    dag_id=f"{dag_id}_sensors",
    description=f"{STEPS} DateTimeSensorAsync waiting at once in the triggerer",
    **_COMMON,
) as dag_sensors:
    for index in range(1, STEPS + 1):
        _Sensor(
            task_id=f"t{index:03d}",
            end_from_trigger=True,  # as the Sleeper steps end theirs
            target_time=(
                "{{ (dag_run.start_date + macros.timedelta("
                "seconds=dag_run.conf.get('seconds', 60))).isoformat() }}"
            ),
        )
