"""``done_job``: the earlier DONE job of the same step that a rerun may reuse."""

from __future__ import annotations

import os
import time

from .conftest import running_app
from .test_api import BASE, start, wait_final


async def _done(client, control, headers, experiment: str = "exp1"):
    r = await client.post(f"{BASE}/{experiment}/done_job", json=control, headers=headers)
    return r


async def test_a_rerun_of_the_same_step_finds_the_earlier_job_and_its_log(
    settings, auth, doc, token
) -> None:
    async with running_app(settings) as client:
        earlier = await wait_final(client, await start(client, doc(), auth), auth)
        assert earlier["status"] == "DONE"
        # the launcher's run_num carries the launch time after the run
        rerun = doc(run_num="12_20260101T000000Z", arp_root_job_id="root-2")
        r = await _done(client, rerun, auth)
        assert r.status_code == 200, r.text
        value = r.json()["value"]
        assert value["job"]["_id"] == earlier["_id"]
        assert value["job"]["status"] == "DONE"
        log = await client.post(f"{BASE}/exp1/job_log_file", json=earlier, headers=auth)
        assert value["log"] == log.json()["value"] and value["log"]

        # nothing to reuse: another run, other parameters, another managed task
        assert (await _done(client, doc(run_num="13"), auth)).json()["value"]["job"] is None
        other_params = doc(params=earlier["def"]["parameters"] + " --nodes=1")
        assert (await _done(client, other_params, auth)).json()["value"]["job"] is None
        other_task = doc("BinaryTester")
        assert (await _done(client, other_task, auth)).json()["value"]["job"] is None


async def test_a_config_changed_since_the_earlier_job_reruns_the_step(
    settings, auth, doc, config_root
) -> None:
    async with running_app(settings) as client:
        await wait_final(client, await start(client, doc(), auth), auth)
        assert (await _done(client, doc(), auth)).json()["value"]["job"] is not None
        later = time.time() + 60
        os.utime(config_root / "test.yaml", (later, later))
        assert (await _done(client, doc(), auth)).json()["value"]["job"] is None


async def test_a_token_of_another_experiment_is_refused(settings, auth, doc, token) -> None:
    async with running_app(settings) as client:
        other = {"Authorization": f"Bearer {token(experiments=['exp2'])}"}
        r = await _done(client, doc(), other)
    assert r.status_code == 403, r.text


async def test_a_run_scoped_token_reuses_only_its_own_users_jobs(settings, doc, token) -> None:
    from jid_service.auth import issue_token

    from .conftest import SECRET

    bob = {"Authorization": f"Bearer {token(user='bob')}"}
    async with running_app(settings) as client:
        await wait_final(client, await start(client, doc(user="bob"), bob), bob)
        alice_run = issue_token(SECRET, "alice", ["exp1"], 600, run="root-9")
        bob_run = issue_token(SECRET, "bob", ["exp1"], 600, run="root-9")
        rerun = doc(arp_root_job_id="root-9")
        alice = await _done(client, rerun, {"Authorization": f"Bearer {alice_run}"})
        own = await _done(client, rerun, {"Authorization": f"Bearer {bob_run}"})
    assert alice.status_code == 200 and alice.json()["value"]["job"] is None
    assert own.status_code == 200 and own.json()["value"]["job"] is not None


async def test_a_document_with_bad_parameters_is_a_422(settings, auth, doc) -> None:
    async with running_app(settings) as client:
        r = await _done(client, doc(params="--taskname Tester --config /etc/passwd"), auth)
    assert r.status_code == 422, r.text
