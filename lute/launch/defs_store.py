"""Where the launcher hands a ``-W`` definition to Airflow: a shared directory or Airflow itself.

``defs_store`` of the launcher's user config (``LUTE_DEFS_STORE``):

- ``files`` (default): ``<defs dir>/[<name>__]<hash>.yaml``, for an Airflow whose
  DAG processor reads the launcher's file system (the laptop stack, one site);
- ``airflow``: the Airflow Variable ``lute_dyn_def__[<name>__]<hash>``, created
  through the REST API (``POST /api/v2/variables``), for an Airflow that shares
  no path with the launcher (Kubernetes, DAG files from git-sync). The key is
  the content's hash, so a Variable is created once and never changed: two
  launches of different workflows create two Variables, and a Variable that
  is already there (409) is the same definition.

Either way ``workflows/airflow/dynamic.py`` builds the DAG, and the launcher
then waits for Airflow to parse it.
"""

from __future__ import annotations

from lute.airflow.workflow_defn import (
    WorkflowDefinition,
    definition_text,
    store_definition,
    variable_key,
)
from lute.launch.airflow_api import AirflowClient

STORES = ("files", "airflow")


def hand_over(defn: WorkflowDefinition, store: str, airflow: AirflowClient) -> str:
    """Store ``defn`` where Airflow's DAG factory reads it; what was written, for the output."""
    if store == "airflow":
        key = variable_key(defn)
        description = f"LUTE dynamic workflow definition of DAG {defn.dag_id}"
        created = airflow.create_variable(key, definition_text(defn), description)
        return f"Airflow Variable {key}" + ("" if created else " (already there)")
    if store == "files":
        return str(store_definition(defn).name)
    raise ValueError(f"defs_store must be one of {', '.join(STORES)}, not {store!r}")
