"""A NUL (or another control character) in any free-text field, with the store on a real PostgreSQL.

PostgreSQL text columns cannot hold a NUL: the models refuse one in every
free-text field of a control document (422 naming the field) before anything
reaches the store, so no such request is a 5xx and nothing is stored.
"""

from __future__ import annotations

import copy
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from jid_service.auth import issue_token
from jid_service.settings import JIDSettings
from jid_service.store import JobStore
from tests.unit.jid.conftest import FAKE_TASK, SECRET, running_app
from tests.unit.jid.test_api import BASE

from .test_store_postgres import pg_url  # noqa: F401  (the fixture: a schema of its own)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

FREE_TEXT = ["arp_root_job_id", "user", "tool_id", "def_id", "raw_status", "def.name",
             "def.executable", "def.trigger", "def.location", "def.parameters",
             "def.run_as_user"]


def _control(config: Path, launcher: Path) -> dict[str, Any]:
    return {
        "_id": str(uuid.uuid4()), "arp_root_job_id": "root-1", "experiment": "exp1",
        "run_num": 3, "user": "alice", "status": "", "tool_id": "", "def_id": "x",
        "def": {"_id": "d1", "name": "Tester", "executable": str(launcher),
                "trigger": "MANUAL", "location": "S3DF",
                "parameters": f"--taskname Tester --config {config}",
                "run_as_user": "alice"},
    }


def _with(control: dict[str, Any], field: str, character: str) -> dict[str, Any]:
    hostile = copy.deepcopy(control)
    holder, key = (hostile["def"], field[4:]) if field.startswith("def.") else (hostile, field)
    holder[key] = f"{holder.get(key) or 'x'}{character}tail"
    return hostile


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b"])
async def test_control_character_in_every_free_text_field(
        pg_url: str, tmp_path: Path, character: str) -> None:  # noqa: F811
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "t.yaml").write_text("title: t\n")
    launcher = tmp_path / "submit_slurm.sh"
    launcher.write_text("#!/bin/sh\n")
    settings = JIDSettings(
        auth_secret=SECRET, db_url=pg_url, state_dir=tmp_path / "state",
        allowed_config_roots=[cfg], poll_interval=0.05,
        local_command=[sys.executable, str(FAKE_TASK)], launcher=launcher,
    )
    headers = {"Authorization": f"Bearer {issue_token(SECRET, 'alice', ['exp1'], 600)}"}
    control = _control(cfg / "t.yaml", launcher)
    async with running_app(settings) as client:
        store: JobStore = client.app.state.service.store
        assert store.engine.dialect.name == "postgresql"
        for field in FREE_TEXT:
            hostile = _with(control, field, character)
            requests = [
                (f"{BASE}/exp1/start_job", hostile),
                (f"{BASE}/exp1/render_job", hostile),
                (f"{BASE}/exp1/kill_job", hostile),
                (f"{BASE}/exp1/job_log_file", hostile),
                (f"{BASE}/exp1/job_log", {"job": hostile, "offset": 0}),
                (f"{BASE}/exp1/typical_duration", hostile),
                (f"{BASE}/job_statuses", [hostile]),
                (f"{BASE}/wait", {"jobs": [hostile], "timeout": 0}),
            ]
            for path, body in requests:
                r = await client.post(path, json=body, headers=headers)
                assert r.status_code == 422, (field, path, r.text)
                answer = r.json()
                assert answer["success"] is False
                assert field in answer["error"], (field, path, answer["error"])
                assert f"U+{ord(character):04X}" in answer["error"]
        assert store.query(None) == []
        # a filter no stored value can match lists nothing (PostgreSQL would refuse it)
        r = await client.get(f"{BASE}/jobs", params={"arp_root_job_id": f"root{character}"},
                             headers=headers)
        assert r.status_code in (200, 422), r.text
        if r.status_code == 200:
            assert r.json()["value"] == []
        # the same document without the character is stored and runs
        r = await client.post(f"{BASE}/exp1/start_job", json=control, headers=headers)
        assert r.status_code == 200, r.text
        assert [rec.id for rec in store.query(None)] == [control["_id"]]


def test_store_query_with_a_nul_filter_matches_nothing(pg_url: str) -> None:  # noqa: F811
    store = JobStore(pg_url)
    try:
        doc = {"_id": "a", "experiment": "exp1", "arp_root_job_id": "r1", "run_num": "1",
               "def": {"_id": "d", "name": "Tester"}}
        assert store.claim(doc, "exp1", "alice")
        assert [r.id for r in store.query(None, arp_root_job_id="r1")] == ["a"]
        assert store.query(None, arp_root_job_id="r1\x00") == []
        assert store.query(None, experiment="exp1\x00") == []
        assert store.query(None, status="SUBMITTED\x00") == []
    finally:
        store.close()
