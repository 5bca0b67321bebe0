"""Whether a deferred step may end from its trigger in this Airflow.

Airflow refuses, when it parses a DAG, any task with ``end_from_trigger``
while a listener plugin is installed (listeners hear of a task's end only in
a worker): Airflow's example plugins while ``load_examples`` is on, or the
OpenLineage provider. :func:`ending_from_trigger_allowed` asks Airflow's own
listener manager the same question its DAG parser asks, so a step asks to
end from its trigger only where that is allowed, and its DAG parses.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

LISTENER_MODULES = ("airflow.listeners.listener", "airflow.sdk.listener")
"""Airflow's listener managers: airflow-core's (what the DAG processor checks), the task SDK's."""


def _listener_manager(load: bool) -> Any | None:
    for name in LISTENER_MODULES:
        module = sys.modules.get(name)
        if load:
            if module is None:
                try:
                    module = importlib.import_module(name)
                except ImportError:  # a worker with the task SDK alone has only the second
                    continue
            return module.get_listener_manager()
        # not loading: only a manager Airflow built already (building one loads plugins)
        if module is not None and module.get_listener_manager.cache_info().currsize:
            return module.get_listener_manager()
    return None


def listeners_installed(load: bool = True) -> bool:
    """True when Airflow loaded a listener plugin in this process.

    ``load=False`` asks only a listener manager Airflow already built (with
    the plugins it loaded) and answers False without one, so that reading
    it while a DAG file is parsed loads no plugin.
    """
    manager = _listener_manager(load)
    return bool(manager is not None and manager.has_listeners)


def ending_from_trigger_allowed(load: bool = True) -> bool:
    """True unless Airflow would refuse ``end_from_trigger`` here (listeners installed)."""
    return not listeners_installed(load)


class EndFromTriggerOption:
    """An operator's ``end_from_trigger``: as asked, where Airflow allows it.

    With listener plugins Airflow refuses the DAG of a task that ends from
    its trigger; such a step ends in the worker, where listeners hear of it.
    Decided when read (Airflow reads it once the DAG file is parsed, then the
    worker when it defers), so parsing a DAG file loads no plugin.
    """

    _end_from_trigger_asked: bool = False

    @property
    def end_from_trigger(self) -> bool:
        """End a deferred step whose job ended DONE from its trigger."""
        return self._end_from_trigger_asked and ending_from_trigger_allowed()

    @end_from_trigger.setter
    def end_from_trigger(self, asked: bool) -> None:
        self._end_from_trigger_asked = bool(asked)
