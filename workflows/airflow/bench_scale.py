"""Benchmark workflows: many steps waiting at once on one triggerer (``benchmarks/scale.py``).

``lute_bench_scale``: ``LUTE_BENCH_SCALE_STEPS`` (default 50) ``Sleeper``
steps in parallel, each started in the triggerer, so every step waits there
for its job. ``lute_bench_scale_sensors``: as many of Airflow's own deferrable
``DateTimeSensorAsync``, all waiting for the run's start plus the conf key
``seconds`` (default 60) and ended from the trigger: the baseline for the
same triggerer. Where ``LUTE_BENCH_SCALE_TARGET_FILE`` names a file holding an
ISO time, the sensors wait for that time instead and start in the triggerer
too (a templated target cannot: it needs Airflow 3.3), so hundreds of them
defer without queueing for worker slots; the DAG's description names the
target, so the benchmark sees when the DAG processor has read it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, TaskGroup

from lute.airflow.baseline_sensor import BaselineSensor
from lute.airflow.operator import JIDSlurmOperator

dag_id = f"lute_{Path(__file__).stem}"
STEPS = int(os.environ.get("LUTE_BENCH_SCALE_STEPS", "50"))


def _fixed_target() -> str | None:
    name = os.environ.get("LUTE_BENCH_SCALE_TARGET_FILE")
    if not name or not Path(name).is_file():
        return None
    return Path(name).read_text().strip() or None


TARGET = _fixed_target()
SPREAD_S = 10


def _spread(target: str, index: int) -> str:
    """Sensor ``index``'s own target: the common one plus ``index % SPREAD_S`` seconds."""
    return (datetime.fromisoformat(target) + timedelta(seconds=index % SPREAD_S)).isoformat()

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
    description=f"{STEPS} DateTimeSensorAsync waiting at once in the triggerer"
    + (f", target {TARGET}" if TARGET else ""),
    **_COMMON,
) as dag_sensors:
    for index in range(1, STEPS + 1):
        BaselineSensor(
            task_id=f"t{index:03d}",
            end_from_trigger=True,  # as the Sleeper steps end theirs
            start_from_trigger=TARGET is not None,
            # spread over SPREAD_S seconds: hundreds of triggers firing in the
            # same instant deadlock Airflow 3.x's triggerer (the runner blocks
            # writing their log lines while the supervisor blocks sending to it)
            target_time=_spread(TARGET, index) if TARGET else (
                "{{ (dag_run.start_date + macros.timedelta("
                "seconds=dag_run.conf.get('seconds', 60))).isoformat() }}"
            ),
        )
