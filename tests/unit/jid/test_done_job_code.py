"""``done_job`` reuses only a job that ran the code the new step would run."""

from __future__ import annotations

import dataclasses

import pytest

from jid_service.done_steps import code_refusal
from lute.io import provenance
from lute.io.provenance import CodeVersion, Provenance

from .conftest import running_app
from .test_api import BASE, start, wait_final


async def _done(client, control, headers):
    r = await client.post(f"{BASE}/exp1/done_job", json=control, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["value"]


async def test_a_job_of_other_code_is_not_reused(
    settings, auth, doc, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_app(settings) as client:
        earlier = await wait_final(client, await start(client, doc(), auth), auth)
        assert earlier["status"] == "DONE"
        same = await _done(client, doc(), auth)
        assert same["job"]["_id"] == earlier["_id"]
        assert same["refused"] is None
        # what the job's log says it ran, as the JID sends it on
        assert same["provenance"] == provenance.capture("Tester", "Test").to_json()

        installed = provenance.capture("Tester", "Test")
        lute = installed.distributions["lute-jid"]
        upgraded = Provenance({**installed.distributions,
                               "lute-jid": dataclasses.replace(lute, version="99.0")})
        monkeypatch.setattr(provenance, "current", lambda managed_task, task: upgraded)
        changed = await _done(client, doc(), auth)
    assert changed["job"] is None and changed["provenance"] is None
    assert changed["refused"] == (
        f"job {earlier['tool_id']} ({earlier['_id']}) is not reused: the code changed since: "
        f"lute-jid {lute.version} -> 99.0")


def test_a_job_whose_log_records_no_provenance_is_not_reused() -> None:
    now = Provenance({"lute-jid": CodeVersion("0.1.0")})
    assert "records no code provenance" in str(code_refusal(None, now))
    assert code_refusal(now, now) is None
