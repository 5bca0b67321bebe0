"""deploy/postgresql/setup.sql on the real PostgreSQL: the JID runs on what it sets up.

The script runs through ``psql`` as the cluster's superuser (with its own role
and database names, so the cluster's others are untouched); a JID then
creates its tables and runs a job as that unprivileged role, which other
roles cannot read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from jid_service.settings import JIDSettings
from tests.unit.jid.conftest import FAKE_TASK, SECRET, running_app
from tests.unit.jid.test_api import BASE, wait_final

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

SETUP = Path(__file__).resolve().parents[3] / "deploy" / "postgresql" / "setup.sql"


def _admin_url() -> sa.URL:
    url = os.environ.get("LUTE_TEST_PG_URL")
    if not url:
        pytest.fail("LUTE_TEST_PG_URL is not set: start PostgreSQL with "
                    "launch_scripts/dev/start_postgres.sh and export its output", pytrace=False)
    return make_url(url)


def _psql(admin: sa.URL, *args: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is not installed (Debian package postgresql-client)", pytrace=False)
    return subprocess.run(
        [psql, "-h", admin.host or "127.0.0.1", "-p", str(admin.port or 5432),
         "-U", admin.username or "postgres", "-d", admin.database or "postgres",
         "-v", "ON_ERROR_STOP=1", *args],
        capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def jid_database() -> Iterator[tuple[sa.URL, str]]:
    """(the JID role's URL of its new database, the role) made by setup.sql; dropped after."""
    admin = _admin_url()
    name = f"lute_jid_{uuid.uuid4().hex[:10]}"
    done = _psql(admin, "-v", f"jid_role={name}", "-v", f"jid_database={name}",
                 "-f", str(SETUP))
    assert done.returncode == 0, done.stderr
    try:
        yield admin.set(username=name, database=name), name
    finally:
        _psql(admin, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _psql(admin, "-c", f'DROP ROLE IF EXISTS "{name}"')


async def test_the_jid_runs_on_the_database_setup_sql_makes(
        tmp_path: Path, jid_database, token_headers) -> None:
    url, role = jid_database
    config_root = tmp_path / "configs"
    config_root.mkdir()
    (config_root / "test.yaml").write_text("title: test\n")
    settings = JIDSettings(
        backend="local", auth_secret=SECRET, db_url=url.render_as_string(hide_password=False),
        state_dir=tmp_path / "state", allowed_config_roots=[config_root],
        allowed_launcher_locations=["/opt/lute"], poll_interval=0.05,
        local_command=[sys.executable, str(FAKE_TASK)],
    )
    doc = {
        "_id": str(uuid.uuid4()), "arp_root_job_id": "root-1", "experiment": "exp1",
        "run_num": "1", "user": "alice", "status": "", "tool_id": "", "def_id": "d",
        "def": {"_id": "d", "name": "Tester", "trigger": "MANUAL", "location": "S3DF",
                "executable": "/opt/lute/launch_scripts/submit_slurm.sh",
                "parameters": f"--taskname Tester --config {config_root / 'test.yaml'}",
                "run_as_user": "alice"},
    }
    async with running_app(settings) as client:
        r = await client.post(f"{BASE}/exp1/start_job", json=doc, headers=token_headers)
        assert r.status_code == 200, r.text
        job = await wait_final(client, r.json()["value"], token_headers)
        assert job["status"] == "DONE"
    # the tables belong to the JID's role, and no other role may read them
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        owners = set(conn.execute(sa.text(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")).scalars())
    engine.dispose()
    assert owners == {role}
    other = f"lute_other_{uuid.uuid4().hex[:8]}"
    admin = _admin_url()
    assert _psql(admin, "-c", f'CREATE ROLE "{other}" LOGIN').returncode == 0
    try:
        outsider = _psql(url.set(username=other), "-c", "SELECT count(*) FROM jid_jobs")
        assert outsider.returncode != 0
        assert "permission denied" in outsider.stderr
    finally:
        _psql(admin, "-c", f'DROP ROLE IF EXISTS "{other}"')


@pytest.fixture
def token_headers() -> dict[str, str]:
    from jid_service.auth import issue_token

    return {"Authorization": f"Bearer {issue_token(SECRET, 'alice', ['exp1'], 600)}"}
