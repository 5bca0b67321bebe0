"""Build the JID control document of one managed-task step, as LUTE's operator does.

Pure functions of the DAG run's ``conf`` and the operator's options, so they
are tested without Airflow. The Slurm argument caps follow LUTE's
``JIDSlurmOperator._sub_overridable_arguments`` step by step, with one
deliberate difference: a ``max_nodes`` cap is written ``--nodes=1-N``, never
LUTE's ``--nodes=0-N``, because a zero lower bound crashes slurmctld 22.05
when the node is busy.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_ROOT = Path(__file__).resolve().parents[2]
"""The source tree this package belongs to (its ``launch_scripts/`` holds the launcher)."""

LAUNCHER_NAME = "submit_slurm.sh"
"""The launcher the JID accepts in ``def.executable`` (by basename or configured path)."""


# uuid5 namespace of step ids: a re-executed try yields the same _id, so the
# JID's idempotent start_job does not submit it twice.
_STEP_NAMESPACE = uuid.UUID("8d6c1c52-4a43-5b5e-9e3c-6a8f3d1b2c10")

_NTASKS = re.compile(r"(?<=\bntasks=)\d+")
_NODES = re.compile(r"nodes=\S+")
_PARTITION = re.compile(r"partition=\S+")


class ControlDocumentError(ValueError):
    """The DAG run's conf lacks what a control document needs."""


def managed_task_name(task_id: str) -> str:
    """The managed task of an operator: its task id without a task-group prefix."""
    return task_id.split(".")[-1]


def apply_slurm_caps(
    slurm_param_str: str,
    max_cores: int | None = None,
    max_nodes: int | None = None,
    require_partition: str | None = None,
) -> str:
    """Cap ``--ntasks`` and ``--nodes`` and force ``--partition`` (LUTE's algorithm).

    Like LUTE, this expects ``--opt=value`` spelling: ``--ntasks`` above the
    cap is lowered to it, and if absent ``--ntasks=1`` is added (Slurm's
    default); every ``nodes=...`` becomes ``nodes=1-N`` or ``--nodes=1-N`` is
    added; every ``partition=...`` becomes the required one or it is added.
    """
    if max_cores is not None:
        found = _NTASKS.findall(slurm_param_str)
        if found:
            if int(found[0]) > max_cores:
                slurm_param_str = _NTASKS.sub(f"{max_cores}", slurm_param_str)
        else:
            slurm_param_str = f"{slurm_param_str} --ntasks=1"

    if max_nodes is not None:
        if _NODES.findall(slurm_param_str):
            slurm_param_str = _NODES.sub(f"nodes=1-{max_nodes}", slurm_param_str)
        else:
            slurm_param_str = f"{slurm_param_str} --nodes=1-{max_nodes}"

    if require_partition is not None:
        if _PARTITION.findall(slurm_param_str):
            slurm_param_str = _PARTITION.sub(
                f"partition={require_partition}", slurm_param_str
            )
        else:
            slurm_param_str = f"{slurm_param_str} --partition={require_partition}"

    return slurm_param_str


def slurm_params_of(conf: Mapping[str, Any]) -> str:
    """The run's Slurm arguments as one string (``launch_airflow.py`` sends a list)."""
    raw = conf.get("slurm_params")
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Sequence):
        return " ".join(str(item) for item in raw)
    raise ControlDocumentError(
        f"dag_run.conf['slurm_params'] must be a list of strings, not {type(raw).__name__}"
    )


def kerberos_cache_of(conf: Mapping[str, Any]) -> str | None:
    """``conf["kerb_file"]``: the Kerberos cache the launcher copied for this run, or None.

    LUTE's launcher always sends the key (None without a cache); its operator
    then adds ``-K <kerb_file>`` after the task's own arguments.
    """
    raw = conf.get("kerb_file")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ControlDocumentError(
            f"dag_run.conf['kerb_file'] must be a path, not {type(raw).__name__}"
        )
    return raw


def step_uuid(dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1,
              kind: str = "job") -> str:
    """A stable id of one try of one step (``kind`` separates job, def and def_id)."""
    key = f"{kind}|{dag_id}|{run_id}|{task_id}|{map_index}|{try_number}"
    return str(uuid.uuid5(_STEP_NAMESPACE, key))


@dataclass(frozen=True)
class StepIdentity:
    """Which try of which step a control document is for."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int = -1

    @classmethod
    def of(cls, ti: Any) -> StepIdentity:
        """The identity of a task instance (anything with its id attributes)."""
        map_index = getattr(ti, "map_index", None)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=int(ti.try_number or 1),
            map_index=-1 if map_index is None else int(map_index),
        )

    def uuid(self, kind: str) -> str:
        """The stable uuid of this try for ``kind``."""
        return step_uuid(
            self.dag_id, self.run_id, self.task_id, self.try_number, self.map_index, kind
        )


def executable_for(conf: Mapping[str, Any]) -> str:
    """``def.executable``: LUTE's ``<lute_location>/launch_scripts/submit_slurm.sh``.

    Without ``lute_location`` in the conf, this install's own launcher path
    is sent (right when Airflow and the JID share an install, as in the dev
    stack). The JID accepts only its configured launcher or one under an
    allowed install location, and always runs its own copy.
    """
    location = conf.get("lute_location") or str(INSTALL_ROOT)
    return f"{str(location).rstrip('/')}/launch_scripts/{LAUNCHER_NAME}"


def build_control_document(
    conf: Mapping[str, Any],
    task_id: str,
    identity: StepIdentity,
    *,
    user: str,
    max_cores: int | None = None,
    max_nodes: int | None = None,
    require_partition: str | None = None,
    custom_slurm_params: str = "",
) -> dict[str, Any]:
    """The control document LUTE's operator would send for this step and conf.

    ``conf`` is the DAG run's conf (``lute_params``, ``slurm_params``,
    ``experiment``, ``run_id``, ``ARP_ROOT_JOB_ID``, ``ARP_LOCATION``, ``user``,
    ``lute_location``, ``kerb_file``). ``custom_slurm_params``, when non-empty, replaces the
    run's Slurm arguments and skips the caps, as in LUTE.
    """
    lute_params = conf.get("lute_params") or {}
    if not isinstance(lute_params, Mapping) or not lute_params.get("config_file"):
        raise ControlDocumentError(
            "dag_run.conf['lute_params']['config_file'] is required (the task config path)"
        )
    if not conf.get("experiment"):
        raise ControlDocumentError("dag_run.conf['experiment'] is required")
    name = managed_task_name(task_id)
    config_path = lute_params["config_file"]
    lute_param_str = f"--taskname {name} --config {config_path}"
    if lute_params.get("debug"):
        lute_param_str += " --debug"
    kerb_file = kerberos_cache_of(conf)
    if kerb_file is not None:
        # quoted: the JID splits parameters with shlex, a space must not split the path
        lute_param_str += f" -K {shlex.quote(kerb_file)}"

    if custom_slurm_params:
        slurm_param_str = custom_slurm_params
    else:
        slurm_param_str = apply_slurm_caps(
            slurm_params_of(conf), max_cores, max_nodes, require_partition
        )

    definition = {
        "_id": identity.uuid("def"),
        "name": name,
        "executable": executable_for(conf),
        "trigger": "MANUAL",
        "location": conf.get("ARP_LOCATION", "S3DF"),
        "parameters": f"{lute_param_str} {slurm_param_str}",
        "run_as_user": user,
    }
    return {
        "_id": identity.uuid("job"),
        "arp_root_job_id": conf.get("ARP_ROOT_JOB_ID"),
        "experiment": conf.get("experiment"),
        "run_num": conf.get("run_id"),
        "user": conf.get("user"),
        "status": "",
        "tool_id": "",
        "def_id": identity.uuid("def_id"),
        "def": definition,
    }
