"""``dag.test()`` of lute_test and lute_test_failure against a real JID process (local backend)."""

from __future__ import annotations

import json

import pytest

from tests.integration.airflow.conftest import run_dag_test
from tests.unit.airflow.support import run_conf

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(300)]


@pytest.mark.parametrize("defer_after", [None, 0], ids=["defaults", "deferring-at-once"])
def test_lute_test_succeeds(tmp_path, jid_process, defer_after) -> None:
    # Deferring at once, dag.test() resumes the steps its inline trigger ended
    # (it ignores TaskSuccessEvent): they find their job again by its _id.
    extra = {} if defer_after is None else {"jid_defer_after": defer_after}
    outcome = run_dag_test(
        tmp_path, jid_process, "test.py", "lute_test", run_conf(jid_process.config, **extra)
    )
    assert outcome["error"] is None, outcome["output"][-3000:]
    assert outcome["state"] == "success", outcome
    assert set(outcome["tasks"]) == {
        "Tester", "BinaryTester", "SocketTester", "WriteTester", "ReadTester"
    }
    assert set(outcome["tasks"].values()) == {"success"}
    # Every step pushed its job's log; BinaryTester ran /bin/ls on the work dir.
    assert set(outcome["logs"]) == set(outcome["tasks"])
    assert all(outcome["logs"][t] for t in outcome["tasks"])


def test_lute_test_failure_fails_and_skips_downstream(tmp_path, jid_process) -> None:
    outcome = run_dag_test(
        tmp_path,
        jid_process,
        "test_failure.py",
        "lute_test_failure",
        run_conf(jid_process.config),
    )
    assert outcome["error"] is None, outcome["output"][-3000:]
    assert outcome["state"] == "failed"
    assert outcome["tasks"] == {
        "Tester": "success",
        "FailingTester": "failed",
        "ReadTester": "upstream_failed",
    }
    assert "FailingTester" in outcome["logs"]
    assert outcome["logs"]["FailingTester"].strip()
    assert "ReadTester" not in outcome["logs"]
    # The failure's message carries the end of the job's log.
    assert "FailingTester (job" in outcome["output"]
    assert "ended FAILED" in outcome["output"]
    assert "Last lines of its log" in outcome["output"]


def test_dry_run_renders_without_submitting(tmp_path, jid_process) -> None:
    import httpx

    conf = run_conf(jid_process.config, dryrun=True)
    outcome = run_dag_test(tmp_path, jid_process, "test.py", "lute_test", conf)
    assert outcome["error"] is None, outcome["output"][-3000:]
    assert outcome["state"] == "success"
    assert all("dry run of" in log for log in outcome["logs"].values())
    assert "--taskname" in outcome["logs"]["Tester"] or "Tester" in outcome["logs"]["Tester"]
    listed = httpx.get(
        f"{jid_process.url}/jid/ws/jobs",
        params={"arp_root_job_id": conf["ARP_ROOT_JOB_ID"]},
        headers={"Authorization": f"Bearer {jid_process.token}"},
        timeout=10,
    ).json()["value"]
    assert listed == []


def test_token_from_conf_authorization_is_used_and_never_logged(tmp_path, jid_process) -> None:
    """ARP compatibility: no token in the connection, ``conf["Authorization"]`` carries it."""
    conf = run_conf(jid_process.config, Authorization=f"Bearer {jid_process.token}")
    outcome = run_dag_test(
        tmp_path, jid_process, "test_failure.py", "lute_test_failure", conf,
        connection_token=False,
    )
    assert outcome["error"] is None, outcome["output"][-3000:]
    # Submitted and followed with the conf's token: the steps ran, the failure is the task's.
    assert outcome["tasks"]["Tester"] == "success"
    assert outcome["tasks"]["FailingTester"] == "failed"
    assert jid_process.token not in outcome["output"]
    assert jid_process.token not in json.dumps(outcome["logs"])


def test_without_any_token_the_step_fails_with_an_auth_error(tmp_path, jid_process) -> None:
    outcome = run_dag_test(
        tmp_path, jid_process, "test_failure.py", "lute_test_failure",
        run_conf(jid_process.config), connection_token=False,
    )
    assert outcome["tasks"]["Tester"] == "failed"
    assert "JID refused the token (401)" in outcome["output"]


def test_sfx_demo_runs_its_parallel_branch(tmp_path, jid_process) -> None:
    from tests.unit.airflow.support import write_demo_config

    config = write_demo_config(jid_process.root / "demo_cfg")
    outcome = run_dag_test(
        tmp_path, jid_process, "sfx_demo.py", "lute_sfx_demo", run_conf(config)
    )
    assert outcome["error"] is None, outcome["output"][-3000:]
    assert outcome["state"] == "success", outcome["tasks"]
    assert outcome["tasks"] == {
        "FrameSimulator": "success",
        "PeakFinder": "success",
        "FrameStatistician": "success",
        "PeakSummarizer": "success",
    }
    assert all(outcome["logs"][task] for task in outcome["tasks"])
