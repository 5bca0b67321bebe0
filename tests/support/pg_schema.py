"""A fresh schema on the real PostgreSQL (``LUTE_TEST_PG_URL``), dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa


@contextlib.contextmanager
def fresh_schema(prefix: str = "jid_test") -> Iterator[str]:
    """The store URL of a new schema (``search_path``), so tests sharing the server never meet."""
    url = os.environ.get("LUTE_TEST_PG_URL")
    if not url:
        pytest.fail("LUTE_TEST_PG_URL is not set: start PostgreSQL with "
                    "launch_scripts/dev/start_postgres.sh and export its output", pytrace=False)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as err:
        pytest.fail(f"PostgreSQL at LUTE_TEST_PG_URL is not reachable: {err}", pytrace=False)
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
