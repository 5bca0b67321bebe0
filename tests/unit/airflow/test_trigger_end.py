"""end_from_trigger where Airflow has listener plugins: the step ends in the worker instead."""

from __future__ import annotations

import pytest

import lute.airflow.trigger_end as trigger_end
from lute.airflow.operator import JIDSlurmOperator


class _Manager:
    def __init__(self, has_listeners: bool) -> None:
        self.has_listeners = has_listeners


@pytest.mark.parametrize(("listeners", "asked", "ends_from_trigger"), [
    (False, True, True), (True, True, False), (False, False, False), (True, False, False),
])
def test_end_from_trigger_is_as_asked_unless_listeners_are_installed(
        monkeypatch, listeners, asked, ends_from_trigger) -> None:
    monkeypatch.setattr(trigger_end, "_listener_manager", lambda load: _Manager(listeners))
    op = JIDSlurmOperator(task_id="Tester", end_from_trigger=asked)
    assert op.end_from_trigger is ends_from_trigger
    kwargs = op._trigger_kwargs({"_id": "a", "status": "RUNNING"}, None)
    assert kwargs["end_from_trigger"] is ends_from_trigger


def test_without_airflow_listener_managers_nothing_refuses_it(monkeypatch) -> None:
    monkeypatch.setattr(trigger_end, "_listener_manager", lambda load: None)
    assert trigger_end.ending_from_trigger_allowed()


def test_a_manager_not_built_yet_is_not_built_while_parsing(monkeypatch) -> None:
    """``load=False`` (a DAG file being parsed) never loads plugins."""
    import sys
    import types

    built: list[bool] = []

    def get_listener_manager():
        built.append(True)
        return _Manager(True)

    get_listener_manager.cache_info = lambda: types.SimpleNamespace(currsize=0)
    fake = types.SimpleNamespace(get_listener_manager=get_listener_manager)
    for name in trigger_end.LISTENER_MODULES:
        monkeypatch.setitem(sys.modules, name, fake)
    assert trigger_end.listeners_installed(load=False) is False
    assert built == []
    assert trigger_end.listeners_installed(load=True) is True
    assert built == [True]
