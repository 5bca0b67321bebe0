"""LUTE's test workflow.

``Tester >> BinaryTester`` and ``Tester >> SocketTester >> WriteTester >> ReadTester``.

Trigger with the conf ``launch_airflow.py`` sends (``experiment``, ``run_id``,
``lute_params: {config_file, debug}``, ``slurm_params``, ...); it succeeds.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from lute.airflow.operator import JIDSlurmOperator

dag_id = f"lute_{Path(__file__).stem}"

with DAG(
    dag_id=dag_id,
    description="LUTE test workflow: every kind of managed test task",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=16,
    tags=["lute", "test"],
) as dag:
    tester = JIDSlurmOperator(task_id="Tester", max_cores=2)
    binary_tester = JIDSlurmOperator(task_id="BinaryTester", max_cores=2)
    socket_tester = JIDSlurmOperator(task_id="SocketTester", max_cores=2)
    write_tester = JIDSlurmOperator(task_id="WriteTester", max_cores=2)
    read_tester = JIDSlurmOperator(task_id="ReadTester", max_cores=2)

    tester >> binary_tester
    tester >> socket_tester >> write_tester >> read_tester
