"""Parse every DAG file with network and SQLite blocked; print what each imports as JSON.

Run in a fresh process by test_dag_files.py and benchmarks/dag_parse.py.
Airflow itself is imported first (the DAG processor has it loaded); each file
is then parsed with the project's own modules unloaded, so its time and the
modules it pulls in include the project's. Per file: parse seconds, the
modules its parse loaded, and its DAGs' shapes.
"""

from __future__ import annotations

import json
import runpy
import socket
import sqlite3
import sys
import time
from pathlib import Path


class ForbiddenAtImportError(RuntimeError):
    """A DAG file tried to reach the network or a database while being parsed."""


def _forbid(*_args, **_kwargs):
    raise ForbiddenAtImportError("network or database access while parsing a DAG file")


def main() -> int:
    """Parse each file given on the command line."""
    # Preloaded, as in the DAG processor.
    from airflow.sdk import DAG

    socket.socket.connect = _forbid
    socket.socket.connect_ex = _forbid
    socket.create_connection = _forbid
    sqlite3.connect = _forbid
    results = {}
    for name in sys.argv[1:]:
        for module in [m for m in sys.modules if m == "lute" or m.startswith("lute.")]:
            del sys.modules[module]
        before = set(sys.modules)
        started = time.perf_counter()
        namespace = runpy.run_path(name)
        elapsed = time.perf_counter() - started
        loaded = sorted(set(sys.modules) - before)
        dags = {}
        for value in namespace.values():
            if isinstance(value, DAG):
                dags[value.dag_id] = {
                    task.task_id: sorted(task.downstream_task_ids) for task in value.tasks
                }
        results[Path(name).name] = {"seconds": elapsed, "loaded": loaded, "dags": dags}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
