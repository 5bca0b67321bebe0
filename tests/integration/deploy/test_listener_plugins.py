"""The DAGs work in an Airflow with listener plugins, as many deployments run it.

Airflow refuses a DAG whose task ends from its trigger while any listener
plugin is installed; the operator then ends its steps in the worker. Tested
with Airflow's default configuration (its example plugins load while
``load_examples`` is on) and with a listener plugin of the deployment's own,
which also hears every step of a run succeed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.airflow.conftest import jid_process, run_dag_test  # noqa: F401 - fixture
from tests.unit.airflow.support import REPO_ROOT, run_conf

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(300)]

DAG_DIR = REPO_ROOT / "workflows" / "airflow"
PROBE = Path(__file__).with_name("dagbag_probe.py")

LISTENER_PLUGIN = textwrap.dedent('''
    """A deployment's listener: records every task instance that succeeded."""
    import json
    import os

    from airflow.listeners import hookimpl
    from airflow.plugins_manager import AirflowPlugin


    class SuccessRecorder:
        @hookimpl
        def on_task_instance_success(self, previous_state, task_instance):
            with open(os.environ["LISTENER_RECORD"], "a") as out:
                out.write(json.dumps(task_instance.task_id) + "\\n")


    class RecorderPlugin(AirflowPlugin):
        name = "success_recorder"
        listeners = [SuccessRecorder()]
''')


def _airflow_env(home: Path, *, load_examples: bool, plugin: bool) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    if plugin:
        (home / "plugins").mkdir(exist_ok=True)
        (home / "plugins" / "success_recorder.py").write_text(LISTENER_PLUGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": str(load_examples),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "LUTE_WORKFLOW_DEFS_DIR": str(home / "defs"),
        "LISTENER_RECORD": str(home / "succeeded.jsonl"),
    })
    return env


def _parse(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, str(PROBE), str(DAG_DIR)], env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("load_examples", "plugin"),
    [(True, False), (False, True)],
    ids=["airflow-default-config", "own-listener-plugin"],
)
def test_every_dag_parses_with_listeners(tmp_path: Path, load_examples: bool,
                                         plugin: bool) -> None:
    report = _parse(_airflow_env(tmp_path / "home", load_examples=load_examples, plugin=plugin))
    assert report["listeners"] is True
    assert report["import_errors"] == {}
    ours = [d for d in report["dags"] if d.startswith("lute_")]
    assert len(ours) >= len(list(DAG_DIR.glob("*.py"))) - 1, report["dags"]  # dynamic.py: 0+
    assert report["end_from_trigger"], report
    assert set(report["end_from_trigger"].values()) == {False}


def test_without_listeners_steps_end_from_their_trigger(tmp_path: Path) -> None:
    report = _parse(_airflow_env(tmp_path / "home", load_examples=False, plugin=False))
    assert report["listeners"] is False
    assert report["import_errors"] == {}
    assert set(report["end_from_trigger"].values()) == {True}


def test_a_deferred_run_succeeds_and_its_listener_hears_every_step(
        tmp_path: Path, jid_process, monkeypatch) -> None:  # noqa: F811 - fixture
    home = tmp_path / "airflow-home"
    env = _airflow_env(home, load_examples=False, plugin=True)
    monkeypatch.setenv("LISTENER_RECORD", env["LISTENER_RECORD"])
    outcome = run_dag_test(tmp_path, jid_process, "test.py", "lute_test",
                           run_conf(jid_process.config, jid_defer_after=0))
    assert outcome["error"] is None, outcome["output"][-3000:]
    assert outcome["state"] == "success", outcome
    assert set(outcome["tasks"].values()) == {"success"}
    heard = {json.loads(line) for line in Path(env["LISTENER_RECORD"]).read_text().splitlines()}
    assert heard == set(outcome["tasks"])
