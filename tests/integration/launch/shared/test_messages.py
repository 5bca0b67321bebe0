"""Launcher messages that name the easy cause, against a real dev stack.

The package's stack (``conftest.py``) has a DAG folder with the test and
dynamic workflows and one DAG file that fails to import. Every launch here
but one dry run stops in the pre-flight: the module runs no job.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from jid_service.auth import issue_token
from lute.launch.stack import REPO_ROOT
from tests.integration.launch.support import (
    airflow_get,
    jid_jobs,
    run_launcher,
    unused_port,
    write_test_config,
)


@pytest.fixture(scope="module", autouse=True)
def import_error_recorded(stack):
    """Airflow has recorded the broken DAG file's import error."""
    deadline = time.monotonic() + 120
    while not airflow_get(stack, "/api/v2/importErrors")["import_errors"]:
        assert time.monotonic() < deadline, "Airflow recorded no import error"
        time.sleep(1)


def _runs(stack) -> int:
    return airflow_get(stack, "/api/v2/dags/lute_test/dagRuns")["total_entries"]


def test_a_dag_that_fails_to_import_shows_airflows_error(stack, env, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    res = run_launcher(env, "-c", str(cfg), "-w", "broken", "-e", "itest", "-r", "1")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "broken.py" in res.stderr and "TypeError" in res.stderr, res.stderr
    assert "failed to import" in res.stderr


def test_a_misspelt_workflow_gets_the_close_ones(stack, env, tmp_path):
    cfg = write_test_config(tmp_path / "cfg")
    res = run_launcher(env, "-c", str(cfg), "-w", "tset", "-e", "itest", "-r", "1")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "did you mean -w test?" in res.stderr, res.stderr


def test_a_misspelt_task_of_a_dynamic_workflow_gets_a_did_you_mean(
    stack, env, tmp_path, defs_dir
):
    cfg = write_test_config(tmp_path / "cfg")
    defn = tmp_path / "wf.yaml"
    defn.write_text("task_name: Testr\nnext: []\n")
    res = run_launcher(env, "-c", str(cfg), "-W", str(defn), "-e", "itest", "-r", "1")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "unknown managed task 'Testr'; did you mean 'Tester'" in res.stderr, res.stderr
    assert not list(defs_dir.glob("*.yaml"))


def test_a_misspelt_parameter_or_bad_value_fails_the_preflight_and_the_dry_run(
    stack, env, tmp_path
):
    before = _runs(stack)
    cfg = write_test_config(tmp_path / "cfg")
    text = cfg.read_text().replace("  float_var:", "  flot_var:")
    cfg.write_text(text.replace("  num_arrays: 2 ", "  num_arrays: 0 "))
    for extra in ([], ["--dry-run"]):
        res = run_launcher(env, "-c", str(cfg), "-w", "test", "-e", "itest", "-r", "1", *extra)
        assert res.returncode == 2, (extra, res.stdout + res.stderr)
        assert "Task Test: key flot_var" in res.stderr, res.stderr
        assert "did you mean 'float_var'" in res.stderr, res.stderr
        assert "Task TestSocket: key num_arrays: Input should be greater than 0" in res.stderr
    assert _runs(stack) == before


def test_a_token_of_another_experiment_exits_3_before_triggering(stack, env, tmp_path):
    before = _runs(stack)
    secret = json.loads((stack.state_dir / "secrets.json").read_text())["jid_secret"]
    token = issue_token(secret, "someone", ["otherexp"], 600)
    cfg = write_test_config(tmp_path / "cfg")
    res = run_launcher(dict(env, LUTE_JID_TOKEN=token),
                       "-c", str(cfg), "-w", "test", "-e", "itest", "-r", "1")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "refused the token for experiment itest" in res.stderr, res.stderr
    assert stack.jid_url in res.stderr
    assert _runs(stack) == before
    assert jid_jobs(stack, experiment="itest") == []


def test_an_unreachable_jid_is_named_by_its_url(stack, env, tmp_path):
    url = f"http://127.0.0.1:{unused_port()}"
    cfg = write_test_config(tmp_path / "cfg")
    res = run_launcher(dict(env, LUTE_JID_URL=url),
                       "-c", str(cfg), "-w", "test", "-e", "itest", "-r", "1", timeout=60)
    assert res.returncode == 3, res.stdout + res.stderr
    assert url in res.stderr and "cannot reach the JID" in res.stderr, res.stderr


def test_the_default_test_config_needs_no_work_dir_made_beforehand(stack, env, tmp_path):
    # config/test.yaml's relative work dir on a fresh checkout: created on first use
    config_dir = tmp_path / "checkout" / "config"
    config_dir.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "test.yaml", config_dir / "test.yaml")
    res = run_launcher(env, "-c", str(config_dir / "test.yaml"), "-w", "test",
                       "-e", "itest", "-r", "1", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "checkout" / "work_dirs" / "test").is_dir()
