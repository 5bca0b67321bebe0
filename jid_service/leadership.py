"""PostgreSQL session advisory locks: which replica polls, and the local backend's one replica.

A session advisory lock lives as long as the connection that took it: when
the replica holding it dies (even by SIGKILL) the server closes its
connection and releases the lock, and the next replica that asks gets it.
Each lock is held on a connection of its own, kept out of the store's pool.
The lock keys are derived from the schema in use, so stores in different
schemas (or databases) of one server do not share locks.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

POLLER_LOCK = "jid-poller"
LOCAL_BACKEND_LOCK = "jid-local-backend"
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3, "connect_timeout": 10}
"""A lock holder whose host vanished (no FIN) is noticed by the server within about 25 s;
a server that does not answer does not hold up a tick for more than 10 s."""
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext(current_schema() || ':' || %s))"


def connect_kwargs(engine: Engine) -> dict[str, Any]:
    """psycopg's connection arguments for the database of ``engine`` (PostgreSQL)."""
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs.pop("context", None)
    return {**KEEPALIVES, **kwargs}  # what db_url says wins


def is_postgres(engine: Engine) -> bool:
    """True when ``engine`` speaks to PostgreSQL (replicas are possible)."""
    return engine.dialect.name == "postgresql"


class PollerLock:
    """The lock that makes one replica the poller; asked for again at every tick until held."""

    def __init__(self, engine: Engine) -> None:
        self._kwargs = connect_kwargs(engine)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.held = False

    async def hold(self) -> bool:
        """Whether this replica holds the lock now: take it if free, check it if held.

        A lost connection loses the lock (the server released it): False,
        and the next call connects again and asks anew.
        """
        import psycopg  # the postgres extra: only a PostgreSQL store gets here

        try:
            if self._conn is None or self._conn.closed:
                self.held = False
                self._conn = await psycopg.AsyncConnection.connect(autocommit=True,
                                                                   **self._kwargs)
            if self.held:
                await self._conn.execute("SELECT 1")
            else:
                cur = await self._conn.execute(_TRY_LOCK, (POLLER_LOCK,))
                row = await cur.fetchone()
                self.held = bool(row and row[0])
        except psycopg.Error as err:
            if self.held:
                log.warning("poller lock connection lost: standing by (%s)", err)
            self.held = False
            await self.close()
        return self.held

    async def close(self) -> None:
        """Release the lock (closing its connection)."""
        import psycopg

        conn, self._conn = self._conn, None
        self.held = False
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()


class ReplicaRefusedError(RuntimeError):
    """This process may not run beside another replica on the same store."""


def hold_local_backend_lock(db_url: str) -> psycopg.Connection[Any] | None:
    """Take the local backend's exclusive lock for the life of the process (PostgreSQL only).

    Returns the connection holding it (keep it open), None on SQLite (one
    process by construction). Raises :class:`ReplicaRefusedError` when another
    replica holds it.
    """
    engine = create_engine(db_url)
    try:
        if not is_postgres(engine):
            return None
        kwargs = connect_kwargs(engine)
    finally:
        engine.dispose()
    import psycopg

    try:
        conn = psycopg.connect(autocommit=True, **kwargs)
        row = conn.execute(_TRY_LOCK, (LOCAL_BACKEND_LOCK,)).fetchone()
    except psycopg.Error as err:
        raise ReplicaRefusedError(f"cannot reach the store to look for other replicas: "
                                  f"{err}") from None
    if not (row and row[0]):
        conn.close()
        raise ReplicaRefusedError(
            "another JID replica with the local backend already runs on this store: local "
            "jobs live on one host; use the slurm or firecrest backend to run replicas")
    return conn
