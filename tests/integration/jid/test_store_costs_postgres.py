"""Job costs in a PostgreSQL store (``LUTE_TEST_PG_URL``): the same checks as on SQLite."""

from __future__ import annotations

import pytest

from jid_service.store import JobStore
from tests.integration.jid.test_store_postgres import pg_url  # noqa: F401 - the fixture
from tests.unit.jid.test_store_costs import check_costs

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def test_costs_on_postgres(pg_url: str) -> None:  # noqa: F811 - the fixture
    store = JobStore(pg_url)
    try:
        assert store.engine.dialect.name == "postgresql"
        check_costs(store)
    finally:
        store.close()
