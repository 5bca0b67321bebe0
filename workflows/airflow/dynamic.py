"""DAG factory of dynamic workflows (``launch_airflow.py -W workflow.yaml``).

The launcher stores each distinct workflow definition as
``[<name>__]<sha256>.yaml`` in the definitions directory
(``$LUTE_WORKFLOW_DEFS_DIR``, default ``workflows/airflow/dynamic_defs``), or,
with ``defs_store: airflow``, as the Airflow Variable
``lute_dyn_def__[<name>__]<sha256>`` (:mod:`lute.airflow.variable_defs`); this
file turns every stored definition of either store into its own DAG
(``lute_dyn_<name>_<hash8>``, shown by its name; or ``lute_dyn_<hash12>``
without one), one task per step, so concurrent launches of different
workflows never share state. The same definition in both stores is one DAG.

A task is named by its managed task; a name that appears again in the same
tree is put in a task group (``step2.PeakFinder``) to keep task ids unique
(the operator strips the group).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, TaskGroup

from lute.airflow.operator import JIDSlurmOperator
from lute.airflow.variable_defs import variable_definitions
from lute.airflow.workflow_defn import WorkflowDefinition, WorkflowStep, stored_definitions


def _build(defn: WorkflowDefinition, source: str) -> DAG:
    seen: dict[str, int] = {}

    def add(step: WorkflowStep) -> JIDSlurmOperator:
        count = seen.get(step.task_name, 0) + 1
        seen[step.task_name] = count
        kwargs = {"task_id": step.task_name, "custom_slurm_params": step.slurm_params}
        if count == 1:
            operator = JIDSlurmOperator(**kwargs)
        else:
            with TaskGroup(group_id=f"step{count}_{step.task_name}"):
                operator = JIDSlurmOperator(**kwargs)
        for child in step.next:
            operator >> add(child)
        return operator

    with DAG(
        dag_id=defn.dag_id,
        dag_display_name=f"{defn.name} (dynamic)" if defn.name else defn.dag_id,
        description=f"dynamic workflow from {source}",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=16,
        tags=["lute", "dynamic"],
    ) as dag:
        add(defn.root)
    return dag


_sources: dict[str, tuple[WorkflowDefinition, str]] = {}
for _path, _defn in stored_definitions():
    _sources.setdefault(_defn.dag_id, (_defn, _path.name))
for _key, _defn in variable_definitions():
    _sources.setdefault(_defn.dag_id, (_defn, f"Airflow Variable {_key}"))
for _dag_id, (_defn, _source) in _sources.items():
    globals()[_dag_id] = _build(_defn, _source)
