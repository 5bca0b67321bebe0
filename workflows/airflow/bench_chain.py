"""Latency benchmark workflows: a 3-step chain of managed tasks, and the same chain in Python.

``lute_bench_chain`` runs ``Sleeper`` three times in a row through the JID
(give ``Sleep.seconds: 0`` in the config for no-op steps);
``lute_bench_chain_python`` runs three no-op PythonOperators, the baseline of
Airflow's own scheduling latency.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, TaskGroup, chain

from lute.airflow.operator import JIDSlurmOperator

dag_id = f"lute_{Path(__file__).stem}"
STEPS = 3

_COMMON = {
    "schedule": None,
    "start_date": datetime(2024, 1, 1),
    "catchup": False,
    "max_active_runs": 16,
    "tags": ["lute", "benchmark"],
}


def _noop() -> None:
    """A step that does nothing: the baseline's work."""


with DAG(
    dag_id=dag_id, description="3 managed no-op steps in a chain", **_COMMON
) as dag:
    steps = []
    for index in range(1, STEPS + 1):
        with TaskGroup(group_id=f"step{index}"):
            steps.append(JIDSlurmOperator(task_id="Sleeper", max_cores=1))
    chain(*steps)

with DAG(
    dag_id=f"{dag_id}_python", description="3 no-op Python steps in a chain", **_COMMON
) as dag_python:
    chain(*(PythonOperator(task_id=f"step{i}", python_callable=_noop) for i in range(1, STEPS + 1)))
