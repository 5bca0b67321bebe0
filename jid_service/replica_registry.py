"""What replicas sharing one PostgreSQL store tell each other through it.

Three small tables beside the job table, on their own metadata:

``jid_replicas``
    one row per running replica (its instance id, name and heartbeat time);
    a replica whose heartbeat is older than ``REPLICA_TIMEOUT`` counts as dead.
``jid_poller_state``
    one row: which replica polls, the time of its last successful tick, the
    backend error it met (if any) and when it last stored a change. Standby
    replicas answer ``/wait`` and ``job_statuses`` as fresh as that row says.
``jid_claim_owners``
    the replica holding each submission claim, so that only the claims of a
    dead replica are recovered (a live one may be calling sbatch right now).

Times are Unix seconds from the writing host's clock (hosts run NTP; every
bound here is tens of seconds).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from jid_service.store import INTERRUPTED_RAW_STATUS, JobRow
from lute.job_status import ACTIVE_STATUSES, JobStatus

REPLICA_TIMEOUT = 45.0
"""A replica silent this long is dead (a leader's failing ticks back off up to 15 s)."""
UNOWNED_CLAIM_AGE = 60.0
"""A claim without an owner row (its replica died between two inserts) is recovered after this."""
POLLER_ROW = "poller"

metadata = MetaData()

replicas = Table(
    "jid_replicas", metadata,
    Column("instance", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("beat_at", Float, nullable=False),
)

poller_state = Table(
    "jid_poller_state", metadata,
    Column("key", String(16), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("holder_name", String(256), nullable=False),
    Column("beat_at", Float, nullable=False),
    Column("tick_ok_at", Float, nullable=True),
    Column("backend_error", Text, nullable=True),
    Column("retry_after", Float, nullable=True),
    Column("changed_at", Float, nullable=True),
)

claim_owners = Table(
    "jid_claim_owners", metadata,
    Column("job_id", String(128), primary_key=True),
    Column("instance", String(128), nullable=False),
    Column("claimed_at", Float, nullable=False),
)


@dataclass(frozen=True)
class PollerState:
    """The polling replica's last report."""

    holder: str
    holder_name: str
    beat_at: float
    tick_ok_at: float | None
    backend_error: str | None
    retry_after: float | None
    changed_at: float | None


class ReplicaRegistry:
    """Heartbeats, the poller's report and claim owners, in the store's database."""

    def __init__(self, engine: Engine, instance: str, name: str) -> None:
        self.engine = engine
        self.instance = instance
        self.name = name
        with engine.begin() as conn:
            # replicas starting together would race to create the tables
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :n))"),
                         {"n": ":jid-replica-tables"})
            metadata.create_all(conn)

    def beat(self) -> None:
        """This replica is alive (inserted on the first call)."""
        now = time.time()
        stmt = insert(replicas).values(instance=self.instance, name=self.name,
                                       started_at=now, beat_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=[replicas.c.instance],
                                          set_={"beat_at": now})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def leave(self) -> None:
        """This replica stops: its row goes, so its claims are recoverable at once."""
        with self.engine.begin() as conn:
            conn.execute(delete(replicas).where(replicas.c.instance == self.instance))

    def record_tick(self, ok: bool, error: str | None, retry_after: float | None,
                    changed: bool) -> None:
        """The poller's report after one tick (only the replica holding the poller lock).

        ``ok``: the tick reached the backend and stored what it learned;
        ``error``: why the backend could not be reached.
        """
        now = time.time()
        values: dict[str, object] = {
            "holder": self.instance, "holder_name": self.name, "beat_at": now,
            "backend_error": error, "retry_after": retry_after,
        }
        if ok:
            values["tick_ok_at"] = now
        if changed:
            values["changed_at"] = now
        stmt = insert(poller_state).values(key=POLLER_ROW, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[poller_state.c.key], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def poller_state(self) -> PollerState | None:
        """The polling replica's last report, or None before any replica polled."""
        with self.engine.connect() as conn:
            row = conn.execute(select(poller_state).where(
                poller_state.c.key == POLLER_ROW)).first()
        if row is None:
            return None
        return PollerState(row.holder, row.holder_name, row.beat_at, row.tick_ok_at,
                           row.backend_error, row.retry_after, row.changed_at)

    def own_claim(self, job_id: str) -> None:
        """Record that this replica submits ``job_id`` (a claim re-made later is re-owned)."""
        now = time.time()
        stmt = insert(claim_owners).values(job_id=job_id, instance=self.instance,
                                           claimed_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=[claim_owners.c.job_id],
                                          set_={"instance": self.instance, "claimed_at": now})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def _orphaned(self) -> ColumnElement[bool]:
        """The condition on job rows: a claim whose owner is dead (or unknown and old)."""
        now = time.time()
        live = select(replicas.c.instance).where(replicas.c.beat_at > now - REPLICA_TIMEOUT)
        owner = select(claim_owners.c.instance).where(
            claim_owners.c.job_id == JobRow.id).scalar_subquery()
        owned = select(claim_owners.c.job_id).where(claim_owners.c.job_id == JobRow.id)
        return and_(
            JobRow.tool_id.is_(None),
            JobRow.status.in_(ACTIVE_STATUSES),
            ((owned.exists() & owner.not_in(live))
             | (~owned.exists() & (JobRow.created_at < now - UNOWNED_CLAIM_AGE))),
        )

    def orphan_claims(self) -> list[str]:
        """The ``_id`` of every claim whose replica is dead: the leader settles them."""
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(JobRow.id).where(self._orphaned()))]

    def fail_orphan_claims(self, job_ids: Collection[str]) -> int:
        """Mark those of ``job_ids`` still orphaned FAILED (never resubmitted); how many."""
        if not job_ids:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), self._orphaned())
                .values(status=JobStatus.FAILED.value, raw_status=INTERRUPTED_RAW_STATUS,
                        updated_at=time.time()))
            return int(result.rowcount or 0)

    def forget_settled_owners(self) -> None:
        """Drop owner rows of claims that were completed or dropped since."""
        open_claims = select(JobRow.id).where(JobRow.tool_id.is_(None),
                                              JobRow.status.in_(ACTIVE_STATUSES))
        with self.engine.begin() as conn:
            conn.execute(delete(claim_owners).where(claim_owners.c.job_id.not_in(open_claims)))
            conn.execute(delete(replicas).where(
                replicas.c.beat_at < time.time() - 24 * 3600.0))
