"""Letting go of the copy of the DAG that Airflow makes for a trigger started from a task.

For every trigger that starts a task in the triggerer (``start_from_trigger``),
Airflow 3.3 deserializes the task's whole DAG to build the trigger's template
context, and keeps that copy alive for as long as the trigger runs: through the
context (``dag``, ``task``, ``ti``), which its runner holds until the trigger
ends, and through the task instance's ``task``. N such steps of one DAG
waiting at once hold N copies of its N tasks, so the triggerer's memory grows
with N squared. Once a step has built its job from the context it needs only
the task instance's names, and :func:`release_dag_copy` drops the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, MutableMapping
from typing import Any


def release_dag_copy(context: Mapping[str, Any] | None, task_instance: Any) -> None:
    """Empty ``context`` and unlink ``task_instance`` from its task (and so from the DAG).

    The task instance keeps its names (``dag_id``, ``task_id``, ``run_id``,
    ``map_index``, ``try_number``), all a trigger reads after its submission.
    """
    # Only memory is at stake: whatever Airflow version refuses either step,
    # the trigger goes on holding the copy.
    with contextlib.suppress(Exception):
        if isinstance(context, MutableMapping):
            # Airflow's runner reads the context only to render the trigger,
            # before it runs.
            context.clear()
    with contextlib.suppress(Exception):
        if getattr(task_instance, "task", None) is not None:
            task_instance.task = None
