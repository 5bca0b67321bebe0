"""The results DB: one SQLite file per work dir, ``<work_dir>/lute.db``.

Every run of a managed task is one row of ``task_runs`` (schema in
docs/db.md). Safe with parallel writers: WAL journal, a busy timeout, and
short transactions. All SQL is parameterised.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DB_NAME = "lute.db"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
FINAL_STATUSES = ("COMPLETED", "FAILED", "TIMEDOUT", "CANCELLED")
LOST = "LOST"
"""Status of a RUNNING record whose process ended without recording its end."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS task_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    managed_task  TEXT NOT NULL,
    task          TEXT NOT NULL,
    experiment    TEXT NOT NULL,
    run           TEXT NOT NULL,
    params_json   TEXT NOT NULL,
    params_hash   TEXT NOT NULL,
    config_path   TEXT,
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    duration_s    REAL,
    exit_code     INTEGER,
    summary_json  TEXT,
    outputs_json  TEXT,
    payload_path  TEXT,
    payload_bytes INTEGER,
    error         TEXT,
    hostname      TEXT,
    pid           INTEGER,
    slurm_job_id  TEXT,
    lute_version  TEXT
);
CREATE INDEX IF NOT EXISTS task_runs_lookup ON task_runs (task, experiment, run, status);
CREATE INDEX IF NOT EXISTS task_runs_hash ON task_runs (params_hash, experiment, run, status);
"""


def params_hash(task: str, params: dict[str, Any]) -> str:
    """A stable hash of a Task name and its validated parameters (canonical JSON)."""
    canonical = json.dumps(
        {"task": task, "params": params}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def utc_now() -> str:
    """Timestamp in ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _owner() -> tuple[int, int]:
    """Who may use a connection: sqlite3 connections belong to one process and thread."""
    return os.getpid(), threading.get_ident()


@dataclass(frozen=True)
class TaskRun:
    """One row of ``task_runs``."""

    id: int
    managed_task: str
    task: str
    experiment: str
    run: str
    params: dict[str, Any]
    params_hash: str
    status: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    exit_code: int | None
    summary: dict[str, Any] | None
    outputs: dict[str, Any] | None
    payload_path: str | None
    payload_bytes: int | None
    error: str | None
    slurm_job_id: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TaskRun:
        """Build from a ``SELECT *`` row."""

        def load(text: str | None) -> Any:
            return None if text is None else json.loads(text)

        return cls(
            id=row["id"],
            managed_task=row["managed_task"],
            task=row["task"],
            experiment=row["experiment"],
            run=row["run"],
            params=json.loads(row["params_json"]),
            params_hash=row["params_hash"],
            status=row["status"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            duration_s=row["duration_s"],
            exit_code=row["exit_code"],
            summary=load(row["summary_json"]),
            outputs=load(row["outputs_json"]),
            payload_path=row["payload_path"],
            payload_bytes=row["payload_bytes"],
            error=row["error"],
            slurm_job_id=row["slurm_job_id"],
        )


class ResultsDB:
    """Access to ``<work_dir>/lute.db`` through one connection, opened at first use.

    The connection is kept for the instance's life (or until :meth:`close`):
    outside a write it holds no lock, so parallel writers are unaffected. A
    copy of the instance in a forked process, or in another thread, opens its
    own.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._owner: tuple[int, int] | None = None
        with self._connect() as conn:
            # creating the schema is a write; a DB that has it needs no lock
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def for_work_dir(cls, work_dir: str | Path) -> ResultsDB:
        """The DB of a work directory."""
        return cls(Path(work_dir) / DB_NAME)

    def close(self) -> None:
        """Close the connection; the next operation opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None and self._owner == _owner():
            conn.close()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._conn is None or self._owner != _owner():
            self._conn = self._open()
            self._owner = _owner()
        yield self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # WAL lets readers proceed while one writer commits; switching mode
            # needs a lock, so retry through the rare "locked" at creation.
            for attempt in range(50):
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.05 * (1 + attempt % 5))
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- writing
    def start_run(
        self,
        *,
        managed_task: str,
        task: str,
        experiment: str,
        run: str,
        params: dict[str, Any],
        config_path: str | None = None,
        hostname: str | None = None,
        pid: int | None = None,
        slurm_job_id: str | None = None,
        lute_version: str | None = None,
    ) -> int:
        """Record a run as RUNNING; returns its id."""
        now = utc_now()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO task_runs (managed_task, task, experiment, run, params_json,"
                " params_hash, config_path, status, created_at, started_at, hostname, pid,"
                " slurm_job_id, lute_version) VALUES (?, ?, ?, ?, ?, ?, ?, 'RUNNING', ?, ?, ?, ?,"
                " ?, ?)",
                (
                    managed_task,
                    task,
                    experiment,
                    run,
                    json.dumps(params, sort_keys=True, default=str),
                    params_hash(task, params),
                    config_path,
                    now,
                    now,
                    hostname,
                    pid,
                    slurm_job_id,
                    lute_version,
                ),
            )
            return int(cur.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        exit_code: int | None,
        summary: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        payload_path: str | None = None,
        payload_bytes: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record the end of a run."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"not a final status: {status}")
        now = utc_now()
        with self._write() as conn:
            row = conn.execute(
                "SELECT started_at FROM task_runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no task run {run_id}")
            started = datetime.fromisoformat(row["started_at"])
            duration = (datetime.fromisoformat(now) - started).total_seconds()
            conn.execute(
                "UPDATE task_runs SET status = ?, ended_at = ?, duration_s = ?, exit_code = ?,"
                " summary_json = ?, outputs_json = ?, payload_path = ?, payload_bytes = ?,"
                " error = ? WHERE id = ?",
                (
                    status,
                    now,
                    duration,
                    exit_code,
                    None if summary is None else json.dumps(summary, default=str),
                    None if outputs is None else json.dumps(outputs, default=str),
                    payload_path,
                    payload_bytes,
                    error,
                    run_id,
                ),
            )

    def mark_lost(self, hostname: str,
                  still_running: Callable[[int | None, str | None], bool]) -> list[int]:
        """Mark ``hostname``'s RUNNING records whose process is gone as LOST; their ids.

        A run killed with SIGKILL (the OOM killer, a node going down) never
        records its end. Only records of this host can be checked: their
        ``pid`` and ``started_at`` go to ``still_running``.
        """
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, pid, started_at FROM task_runs WHERE status = 'RUNNING'"
                " AND hostname = ?", (hostname,)
            ).fetchall()
        lost = [(r["id"], r["started_at"]) for r in rows
                if not still_running(r["pid"], r["started_at"])]
        if not lost:
            return []
        now = utc_now()
        with self._write() as conn:
            for run_id, started_at in lost:
                duration = (datetime.fromisoformat(now)
                            - datetime.fromisoformat(started_at)).total_seconds()
                conn.execute(
                    "UPDATE task_runs SET status = ?, ended_at = ?, duration_s = ?, error = ?"
                    " WHERE id = ? AND status = 'RUNNING'",
                    (LOST, now, duration,
                     "its process ended without recording how (killed with SIGKILL?)", run_id),
                )
        return [run_id for run_id, _ in lost]

    # -- queries
    def get(self, run_id: int) -> TaskRun | None:
        """One run by id."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM task_runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else TaskRun.from_row(row)

    def runs(
        self,
        *,
        task: str | None = None,
        managed_task: str | None = None,
        experiment: str | None = None,
        run: str | None = None,
        status: str | None = None,
    ) -> list[TaskRun]:
        """Runs matching every given filter, oldest first."""
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("task", task),
            ("managed_task", managed_task),
            ("experiment", experiment),
            ("run", run),
            ("status", status),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT * FROM task_runs{where} ORDER BY id", args).fetchall()  # noqa: S608 - columns are fixed names
        return [TaskRun.from_row(r) for r in rows]

    def latest_completed(self, task: str, experiment: str, run: str) -> TaskRun | None:
        """The latest COMPLETED run of Task ``task`` for this experiment and run."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM task_runs WHERE task = ? AND experiment = ? AND run = ?"
                " AND status = 'COMPLETED' ORDER BY ended_at DESC, id DESC LIMIT 1",
                (task, experiment, run),
            ).fetchone()
        return None if row is None else TaskRun.from_row(row)

    def latest_output(self, task: str, experiment: str, run: str, key: str) -> Any:
        """Output ``key`` of the latest COMPLETED run of ``task`` (None if absent)."""
        record = self.latest_completed(task, experiment, run)
        if record is None or not record.outputs:
            return None
        return record.outputs.get(key)

    def find_completed(self, task: str, experiment: str, run: str, hash_: str) -> TaskRun | None:
        """The latest COMPLETED run with these exact parameters (``--skip-done``)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM task_runs WHERE params_hash = ? AND task = ? AND experiment = ?"
                " AND run = ? AND status = 'COMPLETED' ORDER BY id DESC LIMIT 1",
                (hash_, task, experiment, run),
            ).fetchone()
        return None if row is None else TaskRun.from_row(row)
