"""Parse a DAG folder as Airflow's DAG processor does; print what it made of it as JSON.

Usage: python dagbag_probe.py DAG_FOLDER

The last stdout line is ``{"listeners", "import_errors", "dags",
"end_from_trigger"}``: whether Airflow loaded a listener plugin, the files
that failed (with their error), the DAG ids parsed, and each
JIDSlurmOperator task's ``end_from_trigger`` as Airflow read it.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    """Fill a DagBag from the folder and report."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.listeners.listener import get_listener_manager

    bag = DagBag(dag_folder=sys.argv[1])
    ends = {
        f"{dag_id}.{task.task_id}": task.end_from_trigger
        for dag_id, dag in bag.dags.items()
        for task in dag.tasks
        if type(task).__name__ == "JIDSlurmOperator"
    }
    print(json.dumps({
        "listeners": get_listener_manager().has_listeners,
        "import_errors": {k: str(v)[:500] for k, v in bag.import_errors.items()},
        "dags": sorted(bag.dags),
        "end_from_trigger": ends,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
