"""Dynamic workflow definitions kept as Airflow Variables, as the DAG factory reads them.

The launcher with ``defs_store: airflow`` creates one Variable per distinct
definition, ``lute_dyn_def__[<name>__]<hash>`` (content-addressed, created
once, never updated: two launches cannot overwrite or lose each other's
entries). ``workflows/airflow/dynamic.py`` lists those keys with the Task
SDK's ``Variable.keys(prefix=...)`` and reads each, which needs the
supervisor Airflow gives a file it parses (the DAG processor) or a task it
runs (the worker, which parses the file again to find its task). Parsed any
other way (``dag.test()``, a bare ``DagBag``), there is no supervisor and the
Variables are not read: only the files are.

Variables listed come from the metadata database only (Airflow does not list
secrets backends), which is where the launcher's ``POST /api/v2/variables``
puts them.
"""

from __future__ import annotations

import logging
import sys

from lute.airflow.workflow_defn import (
    VARIABLE_PREFIX,
    WorkflowDefinition,
    stored_text_definition,
)

log = logging.getLogger(__name__)


def parsed_by_airflow() -> bool:
    """Whether this process talks to an Airflow supervisor (DAG processor, worker)."""
    # The supervisor sets it on the module it has imported; not imported: no supervisor.
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return task_runner is not None and hasattr(task_runner, "SUPERVISOR_COMMS")


def variable_definitions() -> list[tuple[str, WorkflowDefinition]]:
    """Every valid definition stored as a Variable, by key, sorted by key.

    A Variable that is not a definition, or whose content does not hash to
    its key, is skipped with a warning.
    """
    if not parsed_by_airflow():
        return []
    from airflow.sdk import Variable

    found: list[tuple[str, WorkflowDefinition]] = []
    for key in sorted(Variable.keys(prefix=VARIABLE_PREFIX)):
        text = Variable.get(key, default=None)
        defn = None
        if isinstance(text, str):
            defn = stored_text_definition(key[len(VARIABLE_PREFIX):], text, f"Variable {key}")
        if defn is None:
            log.warning("Variable %s is not a stored workflow definition; skipped", key)
            continue
        found.append((key, defn))
    return found
