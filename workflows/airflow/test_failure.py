"""A workflow whose middle step fails: ``Tester >> FailingTester >> ReadTester``.

The run fails, ``FailingTester``'s log is in its XCom ``log``, and
``ReadTester`` never runs (``upstream_failed``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from lute.airflow.operator import JIDSlurmOperator

dag_id = f"lute_{Path(__file__).stem}"

with DAG(
    dag_id=dag_id,
    description="LUTE failure workflow: a failing step fails the run and skips its downstream",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=16,
    tags=["lute", "test"],
) as dag:
    tester = JIDSlurmOperator(task_id="Tester", max_cores=2)
    failing_tester = JIDSlurmOperator(task_id="FailingTester", max_cores=2)
    read_tester = JIDSlurmOperator(task_id="ReadTester", max_cores=2)

    tester >> failing_tester >> read_tester
