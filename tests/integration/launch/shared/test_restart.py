"""``lute-dev-stack restart``: one component of a running stack restarted, the rest untouched."""

from __future__ import annotations

import subprocess
import sys

import httpx

from lute.launch.processes import read_records
from lute.launch.stack import REPO_ROOT
from tests.integration.launch.support import jid_jobs


def _records(stack) -> dict[str, object]:
    return {r.name: r for r in read_records(stack.pid_dir)}


def _restart_cli(stack, component: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lute.launch.devstack", "restart", component,
         "--state-dir", str(stack.state_dir), "--timeout", "90"],
        capture_output=True, text=True, timeout=150, cwd=REPO_ROOT,
    )


def test_restarting_the_jid_keeps_its_store_and_the_other_components(stack):
    before = _records(stack)
    jobs_before = jid_jobs(stack)
    # in-process: the stack's processes are this test's children, which it must reap
    # (`lute-dev-stack up` leaves them to init); the command line is the same call
    restarted = stack.restart("jid")
    after = _records(stack)
    assert restarted == after["jid"] and after["jid"].pid != before["jid"].pid
    assert not before["jid"].is_alive()
    assert after["jid"].is_alive()
    for name, rec in before.items():  # nothing else was touched
        if name != "jid":
            assert after[name] == rec and rec.is_alive(), name
    # ready means serving: an authenticated read answers, from the same store
    assert httpx.get(f"{stack.jid_url}/healthz", timeout=5).status_code == 200
    assert jid_jobs(stack) == jobs_before


def test_restarting_the_triggerer_waits_for_its_heartbeat(stack):
    before = _records(stack)
    stack.restart("triggerer", timeout=240)  # a busy machine slows its first heartbeat
    after = _records(stack)
    assert after["triggerer"].pid != before["triggerer"].pid
    assert after["triggerer"].is_alive() and not before["triggerer"].is_alive()
    assert after["scheduler"] == before["scheduler"] and after["jid"] == before["jid"]


def test_an_unknown_component_is_named_with_the_close_ones(stack):
    res = _restart_cli(stack, "jdi")
    assert res.returncode == 1
    assert "no component 'jdi'" in res.stderr and "did you mean 'jid'" in res.stderr
