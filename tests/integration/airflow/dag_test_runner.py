"""Run ``dag.test()`` of one DAG file in a fresh process and print the outcome as JSON.

Usage: python dag_test_runner.py DAG_FILE DAG_ID CONF_JSON

Airflow reads its configuration when first imported, so each ``dag.test()``
runs in its own process whose environment (AIRFLOW_HOME, the SQLite DB, the
``jid_default`` connection) the calling test sets. The last stdout line is
``{"state", "tasks": {task_id: state}, "logs": {task_id: xcom log}, "error"}``.
"""

from __future__ import annotations

import json
import runpy
import sys


def main() -> int:
    """Initialise the DB, run the DAG once, print the outcome."""
    dag_file, dag_id, conf_json = sys.argv[1:4]
    from airflow.sdk import DAG
    from airflow.utils.db import initdb

    initdb()
    namespace = runpy.run_path(dag_file)
    dags = [v for v in namespace.values() if isinstance(v, DAG) and v.dag_id == dag_id]
    if not dags:
        print(json.dumps({"error": f"no DAG {dag_id} in {dag_file}"}))
        return 2
    error = None
    try:
        run = dags[0].test(run_conf=json.loads(conf_json))
    except Exception as exc:  # reported to the test, which asserts on it
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1

    from airflow.models.xcom import XComModel
    from airflow.settings import Session
    from sqlalchemy import select

    session = Session()
    tasks = {ti.task_id: str(ti.state) if ti.state else None for ti in run.get_task_instances()}
    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "log"
        )
    ).all()
    logs = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    print(json.dumps({"state": str(run.state), "tasks": tasks, "logs": logs, "error": error}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
