"""The triggerer warm-up plugin: only in ``airflow triggerer``, and it hands over a ready API."""

from __future__ import annotations

import pytest
from airflow.jobs import triggerer_job_runner as runner

from lute.airflow import triggerer_warmup
from lute.airflow.triggerer_warmup import TriggererWarmupPlugin, is_triggerer_process

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "triggerer"], True),
        (["/venv/bin/airflow", "triggerer", "--capacity", "10"], True),
        (["airflow", "scheduler"], False),
        (["airflow", "dags", "test", "triggerer"], False),
        (["airflow"], False),
    ],
)
def test_only_the_triggerer_process_is_recognised(argv, expected) -> None:
    assert is_triggerer_process(argv) is expected


def test_the_plugin_adds_no_listener() -> None:
    # A listener would make Airflow refuse every task that ends from its trigger.
    assert not TriggererWarmupPlugin.listeners
    assert TriggererWarmupPlugin.name == "lute_triggerer_warmup"


def test_outside_the_triggerer_nothing_is_built(monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["airflow", "scheduler"])
    monkeypatch.setattr(triggerer_warmup, "_state", {})
    before = runner.in_process_api_server
    TriggererWarmupPlugin.on_load()
    assert runner.in_process_api_server is before
    assert triggerer_warmup._state == {}


def test_in_the_triggerer_the_supervisor_gets_the_ready_api(monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["airflow", "triggerer"])
    monkeypatch.setattr(triggerer_warmup, "_state", {})
    monkeypatch.setattr(runner, "in_process_api_server", runner.in_process_api_server)
    TriggererWarmupPlugin.on_load()
    api = runner.in_process_api_server()
    # Every later call (the supervisor's client) gets the instance already built.
    assert api is runner.in_process_api_server()
    assert api is triggerer_warmup.warm_in_process_api()
    assert api.app is api.app
