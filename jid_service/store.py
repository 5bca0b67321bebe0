"""The persistent job store (SQLAlchemy 2): SQLite in WAL mode by default, PostgreSQL by URL.

One row per control document ``_id`` (the primary key makes ``start_job``
idempotent: the first request inserts a *claim* row, with no ``tool_id`` yet,
before submitting; a concurrent twin fails to insert and waits for the claim).
The methods are blocking; the service calls them in worker threads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from jid_service.backends.job_cost import JobCost
from jid_service.store_schema import (
    Base,
    CostRow,
    JobRow,
    cost_columns,
    cost_document,
    cost_of_joined,
    make_engine,
)
from lute.job_status import ACTIVE_STATUSES, JobStatus

__all__ = ["ActiveJob", "JobRecord", "JobRow", "JobStore", "StateUpdate", "make_engine"]

CLAIM_RAW_STATUS = "CLAIMED"
"""``raw_status`` of a row whose submission is in progress (no ``tool_id`` yet)."""
INTERRUPTED_RAW_STATUS = "SUBMISSION_INTERRUPTED"
DOCUMENT_CACHE_SIZE = 20_000


@dataclass(slots=True)
class JobRecord:
    """A stored job, detached from the session."""

    id: str
    experiment: str
    arp_root_job_id: str | None
    status: str
    raw_status: str | None
    exit_code: int | None
    tool_id: str | None
    log_path: str | None
    user: str | None
    document: dict[str, Any]
    created_at: float
    updated_at: float
    cost: dict[str, Any] | None = None
    """What the finished job cost (``jid_job_costs``), once recorded."""

    @property
    def claimed_only(self) -> bool:
        """True while the submission is in progress (no backend id yet)."""
        return self.tool_id is None and self.status in ACTIVE_STATUSES

    @property
    def finished(self) -> bool:
        """True once the job cannot change state."""
        return self.status not in ACTIVE_STATUSES

    def to_document(self) -> dict[str, Any]:
        """The control document with the JID's view of the job."""
        doc = dict(self.document)
        doc["status"] = self.status
        doc["tool_id"] = self.tool_id or ""
        doc["raw_status"] = self.raw_status
        doc["exit_code"] = self.exit_code
        doc.pop("cost", None)  # only the JID's own measure, never one a caller sent
        if self.cost is not None:
            doc["cost"] = self.cost
        return doc


@dataclass(frozen=True)
class ActiveJob:
    """What the poller needs of an active job."""

    id: str
    tool_id: str
    status: str
    raw_status: str | None
    exit_code: int | None


@dataclass(frozen=True)
class StateUpdate:
    """A new state of one job, from a poll tick."""

    id: str
    status: str
    raw_status: str
    exit_code: int | None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _record(row: JobRow, cost: CostRow | None = None) -> JobRecord:
    return JobRecord(
        id=row.id,
        experiment=row.experiment,
        arp_root_job_id=row.arp_root_job_id,
        status=row.status,
        raw_status=row.raw_status,
        exit_code=row.exit_code,
        tool_id=row.tool_id,
        log_path=row.log_path,
        user=row.user,
        document=json.loads(row.document),
        created_at=row.created_at,
        updated_at=row.updated_at,
        cost=cost_document(cost) if cost is not None else None,
    )


def _costs_of(session: Any, job_ids: list[str]) -> dict[str, CostRow]:
    rows = session.scalars(select(CostRow).where(CostRow.job_id.in_(job_ids))) if job_ids else []
    return {row.job_id: row for row in rows}


class JobStore:
    """CRUD on the job table; every method is one short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        table, costs = JobRow.__table__, CostRow.__table__
        self._by_ids = (
            select(table, *cost_columns())
            .select_from(table.outerjoin(costs, costs.c.job_id == table.c.id))
            .where(table.c.id.in_(bindparam("ids", expanding=True)))
        )
        self._documents: dict[tuple[str, float], dict[str, Any]] = {}

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self._session() as s:
            s.execute(select(1))

    def claim(self, document: dict[str, Any], experiment: str, user: str | None) -> bool:
        """Insert the claim row for a new job; False when the ``_id`` already exists."""
        now = time.time()
        row = JobRow(
            id=document["_id"],
            experiment=experiment,
            arp_root_job_id=_text_or_none(document.get("arp_root_job_id")),
            status=JobStatus.SUBMITTED.value,
            raw_status=CLAIM_RAW_STATUS,
            exit_code=None,
            tool_id=None,
            log_path=None,
            user=user,
            document=json.dumps(document, separators=(",", ":")),
            created_at=now,
            updated_at=now,
        )
        try:
            with self._session.begin() as s:
                s.add(row)
        except IntegrityError:
            return False
        return True

    def complete_claim(
        self, job_id: str, tool_id: str, log_path: str | None, raw_status: str
    ) -> None:
        """Record the backend's id once the submission succeeded."""
        with self._session.begin() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(tool_id=tool_id, log_path=log_path, raw_status=raw_status,
                        updated_at=time.time())
            )

    def record_staging(self, job_id: str, staged: list[dict[str, Any]],
                       error: str | None = None) -> None:
        """Add what staging moved (and why it failed) to the job's stored document."""
        with self._session.begin() as s:
            if (row := s.get(JobRow, job_id, with_for_update=True)) is not None:
                document = json.loads(row.document)
                document["staged"] = [*(document.get("staged") or []), *staged]
                if error is not None:
                    document["staging_error"] = error
                row.document = json.dumps(document, separators=(",", ":"))
                row.updated_at = time.time()

    def drop_claim(self, job_id: str) -> None:
        """Forget a claim whose submission failed, so that a retry submits again."""
        with self._session.begin() as s:
            s.execute(delete(JobRow).where(JobRow.id == job_id, JobRow.tool_id.is_(None)))

    def interrupted_claims(self) -> list[str]:
        """The ``_id`` of every claim whose submission has no backend id yet."""
        with self._session() as s:
            rows = s.execute(
                select(JobRow.id).where(JobRow.tool_id.is_(None),
                                        JobRow.status.in_(ACTIVE_STATUSES))
            )
            return [r[0] for r in rows]

    def fail_interrupted_claims(self) -> int:
        """Mark claims left by a daemon that died mid-submission as FAILED (never resubmit)."""
        with self._session.begin() as s:
            result = s.execute(
                update(JobRow)
                .where(JobRow.tool_id.is_(None), JobRow.status.in_(ACTIVE_STATUSES))
                .values(status=JobStatus.FAILED.value, raw_status=INTERRUPTED_RAW_STATUS,
                        updated_at=time.time())
            )
            return int(result.rowcount or 0)

    def get(self, job_id: str) -> JobRecord | None:
        """One job by ``_id``."""
        with self._session() as s:
            row = s.get(JobRow, job_id)
            return _record(row, s.get(CostRow, job_id)) if row else None

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        """Jobs by ``_id`` (unknown ids are left out).

        The hot path of ``job_statuses``: a cached Core statement, and documents
        parsed once per row version (``updated_at``: staging adds to a document).
        """
        if not job_ids:
            return {}
        out: dict[str, JobRecord] = {}
        ids = list(dict.fromkeys(job_ids))
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(self._by_ids, {"ids": ids[start:start + 500]})
                for row in rows:
                    out[row.id] = self._from_row(row)
        return out

    def _from_row(self, row: Any) -> JobRecord:
        key = (row.id, row.updated_at)
        document = self._documents.get(key)
        if document is None:
            document = json.loads(row.document)
            if len(self._documents) >= DOCUMENT_CACHE_SIZE:
                self._documents.clear()  # crude but bounded; refills from the next reads
            self._documents[key] = document
        return JobRecord(
            id=row.id, experiment=row.experiment, arp_root_job_id=row.arp_root_job_id,
            status=row.status, raw_status=row.raw_status, exit_code=row.exit_code,
            tool_id=row.tool_id, log_path=row.log_path, user=row.user, document=document,
            created_at=row.created_at, updated_at=row.updated_at, cost=cost_of_joined(row),
        )

    def active(self) -> list[ActiveJob]:
        """Every job that may still change state and has a backend id."""
        with self._session() as s:
            rows = s.execute(
                select(JobRow.id, JobRow.tool_id, JobRow.status, JobRow.raw_status,
                       JobRow.exit_code).where(
                    JobRow.status.in_(ACTIVE_STATUSES), JobRow.tool_id.is_not(None)
                )
            )
            return [ActiveJob(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def apply(self, updates: Iterable[StateUpdate]) -> int:
        """Write new states; returns how many rows changed."""
        changed = 0
        now = time.time()
        with self._session.begin() as s:
            for u in updates:
                result = s.execute(
                    update(JobRow)
                    .where(JobRow.id == u.id, JobRow.status.in_(ACTIVE_STATUSES))
                    .values(status=u.status, raw_status=u.raw_status, exit_code=u.exit_code,
                            updated_at=now)
                )
                changed += int(result.rowcount or 0)
        return changed

    def record_costs(self, costs: dict[str, JobCost]) -> int:
        """Store what finished jobs cost (by ``_id``); a job whose cost is stored keeps it."""
        if not costs:
            return 0
        now = time.time()
        for attempt in range(2):
            try:
                with self._session.begin() as s:
                    known = set(_costs_of(s, list(costs)))
                    for job_id, cost in costs.items():
                        if job_id not in known:
                            s.add(CostRow(job_id=job_id, recorded_at=now, **cost.model_dump()))
                return len(costs.keys() - known)
            except IntegrityError:
                if attempt:  # another replica recorded some of them meanwhile
                    raise
        return 0

    def recent_durations(self, experiment: str, task: str, parameters: str,
                         sample: int = 5, scan: int = 500) -> list[float]:
        """Seconds from submission to end of the newest ``sample`` DONE jobs of one step.

        A step is the control document's ``def.name`` (the managed task) with
        the same ``def.parameters`` (its config and Slurm options): the same
        task on another config may take far longer or shorter. Only the newest
        ``scan`` DONE jobs of the experiment are looked at.
        """
        stmt = (
            select(JobRow.id, JobRow.created_at, JobRow.updated_at, JobRow.document)
            .where(JobRow.experiment == experiment, JobRow.status == JobStatus.DONE.value)
            .order_by(JobRow.updated_at.desc())
            .limit(scan)
        )
        out: list[float] = []
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                document = self._documents.get((row.id, row.updated_at))
                if document is None:
                    document = json.loads(row.document)
                definition = document.get("def")
                if isinstance(definition, dict) and definition.get("name") == task \
                        and definition.get("parameters") == parameters:
                    out.append(max(0.0, row.updated_at - row.created_at))
                    if len(out) >= sample:
                        break
        return out

    def query(
        self,
        experiments: frozenset[str] | None,
        experiment: str | None = None,
        arp_root_job_id: str | None = None,
        status: str | None = None,
        limit: int = 1000,
        newest: bool = False,
    ) -> list[JobRecord]:
        """Jobs matching the filters, oldest first; ``experiments`` None means all.

        ``newest``: the ``limit`` most recent matches (still listed oldest first).
        """
        if any("\x00" in value for value in (experiment, arp_root_job_id, status) if value):
            # no stored value holds a NUL (the models refuse it), and PostgreSQL
            # refuses to compare with one rather than matching nothing
            return []
        stmt = select(JobRow)
        if experiments is not None:
            if not experiments:
                return []
            stmt = stmt.where(JobRow.experiment.in_(sorted(experiments)))
        if experiment is not None:
            stmt = stmt.where(JobRow.experiment == experiment)
        if arp_root_job_id is not None:
            stmt = stmt.where(JobRow.arp_root_job_id == arp_root_job_id)
        if status is not None:
            stmt = stmt.where(JobRow.status == status)
        if newest:
            stmt = stmt.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        else:
            stmt = stmt.order_by(JobRow.created_at, JobRow.id).limit(limit)
        with self._session() as s:
            rows = list(s.scalars(stmt))
            costs = _costs_of(s, [row.id for row in rows if row.status not in ACTIVE_STATUSES])
            records = [_record(row, costs.get(row.id)) for row in rows]
        return records[::-1] if newest else records

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each status."""
        with self._session() as s:
            rows = s.execute(select(JobRow.status, func.count()).group_by(JobRow.status))
            return {r[0]: int(r[1]) for r in rows}
