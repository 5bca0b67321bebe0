"""Connection arguments for an embedded stack's SQLite metadata database.

Airflow's scheduler, API server, DAG processor and triggerer all write to the
one SQLite file. sqlite3 waits 5 s for a lock by default; on a loaded machine
a writer can hold it longer, and Airflow then answers 500 "Database error".
Airflow imports this mapping by name (``[database] sql_alchemy_connect_args``).
"""

from typing import Any

#: seconds a connection waits for SQLite's write lock before giving up
CONNECT_ARGS: dict[str, Any] = {"timeout": 30}
