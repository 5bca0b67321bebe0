"""The job store's tables and engine (SQLAlchemy 2; SQLite or PostgreSQL).

``jid_jobs`` holds one row per control document ``_id``. ``jid_job_costs``
holds what each finished job cost (queue wait, run time, peak memory, CPU),
one row per job, written once when the scheduler's accounting has it. It is a
table of its own, so a store made by an earlier version gains it through
``create_all`` without any change to ``jid_jobs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from jid_service.backends.job_cost import JobCost


class Base(DeclarativeBase):
    """The declarative base of the job store's own tables."""


class JobRow(Base):
    """One job: the control document as submitted plus what the JID learned about it."""

    __tablename__ = "jid_jobs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(64))
    arp_root_job_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    raw_status: Mapped[str | None] = mapped_column(String(256), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tool_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    log_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    user: Mapped[str | None] = mapped_column(String(256), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_jid_jobs_experiment", "experiment"),
        Index("ix_jid_jobs_root", "arp_root_job_id"),
        Index("ix_jid_jobs_status", "status"),
    )


class CostRow(Base):
    """What one finished job cost; every measure is null when the backend does not know it."""

    __tablename__ = "jid_job_costs"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    queue_wait_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_rss_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cpu_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu_efficiency: Mapped[float | None] = mapped_column(Float, nullable=True)
    recorded_at: Mapped[float] = mapped_column(Float)


COST_FIELDS: tuple[str, ...] = tuple(JobCost.model_fields)
"""The measures of a cost, in the order of :class:`JobCost` (each a ``jid_job_costs`` column)."""
COST_LABELS: dict[str, str] = {name: f"cost_{name}" for name in COST_FIELDS}
"""The cost columns' names in a joined select (``exit_code`` is also a job column)."""


def cost_columns() -> list[Any]:
    """The cost columns, labelled by :data:`COST_LABELS`, for a select joined with the jobs."""
    table = CostRow.__table__
    return [*(table.c[name].label(COST_LABELS[name]) for name in COST_FIELDS),
            table.c.recorded_at.label("cost_recorded")]


def cost_of_joined(row: Any) -> dict[str, Any] | None:
    """The cost of a joined row (labelled columns), or None when the job has none yet."""
    if row.cost_recorded is None:
        return None
    return {name: getattr(row, COST_LABELS[name]) for name in COST_FIELDS}


def cost_document(row: CostRow) -> dict[str, Any]:
    """The ``cost`` object of a job document."""
    return {name: getattr(row, name) for name in COST_FIELDS}


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and its directory created."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            # a directory made here is the daemon's alone, like the store in it
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
