"""The jid-service CLI in-process: jobs table (newest first by limit), token, serve refusal."""

from __future__ import annotations

import jwt
import pytest

from jid_service.cli import main
from jid_service.store import JobStore

from .conftest import SECRET


def _fill(url: str, n: int) -> None:
    store = JobStore(url)
    for i in range(n):
        doc = {"_id": f"job-{i:03d}", "experiment": "exp1" if i % 2 else "exp2",
               "arp_root_job_id": "root", "run_num": 5, "def": {"_id": "d", "name": "Tester"}}
        assert store.claim(doc, doc["experiment"], "alice")
        store.complete_claim(doc["_id"], str(1000 + i), None, "SUBMITTED")
    store.close()


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key in ("JID_SETTINGS_FILE", "JID_DB_URL", "JID_AUTH_SECRET", "JID_STATE_DIR"):
        monkeypatch.delenv(key, raising=False)
    url = f"sqlite:///{tmp_path / 'jid.db'}"
    monkeypatch.setenv("JID_DB_URL", url)
    monkeypatch.setenv("JID_STATE_DIR", str(tmp_path / "state"))
    return url


def test_jobs_table(env, capsys) -> None:
    _fill(env, 6)
    assert main(["jobs", "--width", "200"]) == 0
    out = capsys.readouterr().out
    assert "6 job(s)" in out and all(f"job-{i:03d}" in out for i in range(6))
    assert main(["jobs", "--experiment", "exp1", "--limit", "2", "--width", "200"]) == 0
    out = capsys.readouterr().out
    # the newest two of exp1 (jobs 3 and 5), oldest first
    assert "2 job(s)" in out and out.index("job-003") < out.index("job-005")
    assert "job-001" not in out and "job-002" not in out


def test_token_and_missing_secret(env, monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit, match="JID_AUTH_SECRET"):
        main(["token", "--user", "u", "--experiment", "e", "--ttl", "60"])
    monkeypatch.setenv("JID_AUTH_SECRET", "short")
    with pytest.raises(SystemExit, match="too short"):
        main(["serve", "--port", "31999"])
    monkeypatch.setenv("JID_AUTH_SECRET", SECRET)
    assert main(["token", "--user", "u", "--experiment", "*", "--ttl", "60"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert claims["experiments"] == "*" and claims["admin"] is False
    with pytest.raises(SystemExit, match="--ttl must be positive"):
        main(["token", "--user", "u", "--experiment", "e", "--ttl", "0"])
