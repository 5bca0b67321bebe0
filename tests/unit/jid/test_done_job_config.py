"""``done_job`` reruns a step whose own config changed, and the steps after a rerun step."""

from __future__ import annotations

from pathlib import Path

from jid_service.done_steps import config_refusal
from lute.io.step_config import from_log, log_line, step_digest

from .conftest import running_app
from .test_api import BASE, start, wait_final

CONFIG = """\
---
title: test
work_dir: work
...
---
Test:
  float_var: 0.01
TestBinary:
  executable: /bin/ls
"""


async def _done(client, control, headers) -> dict:
    r = await client.post(f"{BASE}/exp1/done_job", json=control, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["value"]


async def test_only_an_edit_of_the_steps_own_section_reruns_it(
        settings, auth, doc, config_root: Path) -> None:
    config = config_root / "test.yaml"
    config.write_text(CONFIG)
    async with running_app(settings) as client:
        earlier = await wait_final(client, await start(client, doc(), auth), auth)
        assert earlier["status"] == "DONE"
        # another Task's section edited (the file is newer than the job): still reused
        config.write_text(CONFIG.replace("/bin/ls", "/bin/true"))
        other = await _done(client, doc(arp_root_job_id="root-2"), auth)
        assert other["job"]["_id"] == earlier["_id"], other
        # its own Task's section edited: rerun, and the answer says why
        config.write_text(CONFIG.replace("0.01", "0.02"))
        own = await _done(client, doc(arp_root_job_id="root-3"), auth)
    assert own["job"] is None
    assert own["refused"] == (
        f"job {earlier['tool_id']} ({earlier['_id']}) is not reused: its Task's section "
        "or the header of the config changed since")


async def test_a_step_after_one_that_ran_again_in_the_same_run_reruns(
        settings, auth, doc, config_root: Path) -> None:
    (config_root / "test.yaml").write_text(CONFIG)
    async with running_app(settings) as client:
        earlier = await wait_final(client, await start(client, doc(), auth), auth)
        # the rerun (root-2): the first step is reused, then another step really runs
        assert (await _done(client, doc(arp_root_job_id="root-2"), auth))["job"] is not None
        ran = await wait_final(client, await start(
            client, doc("BinaryTester", arp_root_job_id="root-2"), auth), auth)
        assert ran["status"] == "DONE"
        after = await _done(client, doc(arp_root_job_id="root-2"), auth)
        # a run that did not rerun anything still reuses it
        elsewhere = await _done(client, doc(arp_root_job_id="root-4"), auth)
    assert after["job"] is None
    assert after["refused"] == (
        f"job {earlier['tool_id']} ({earlier['_id']}) is not reused: an earlier step of "
        f"this run ran again since (BinaryTester, job {ran['tool_id']})")
    assert elsewhere["job"]["_id"] == earlier["_id"]


def test_the_digest_covers_the_header_and_the_tasks_own_section(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    first = step_digest(config, "Test")
    assert first is not None and len(first) == 64
    assert from_log(f"Tester: starting\nTester: {log_line(config, 'Test')}\n") == first
    config.write_text(CONFIG.replace("/bin/ls", "/bin/true"))
    assert step_digest(config, "Test") == first
    assert step_digest(config, "TestBinary") != first
    config.write_text(CONFIG.replace("title: test", "title: other"))
    assert step_digest(config, "Test") != first
    config.write_text("not: [two documents")
    assert step_digest(config, "Test") is None
    assert from_log("no digest here") is None


def test_a_job_without_a_digest_falls_back_to_the_files_modification_time() -> None:
    class Record:
        created_at = 100.0

    assert config_refusal(Record(), None, "d" * 64, config_modified=50.0) is None
    assert "modified since" in str(config_refusal(Record(), None, "d" * 64, 150.0))
    assert "cannot be read" in str(config_refusal(Record(), None, None, None))
    assert config_refusal(Record(), "d" * 64, "d" * 64, 150.0) is None
