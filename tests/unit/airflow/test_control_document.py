"""Control documents compared with LUTE's own operator for a table of conf/cap combinations.

``_lute_reference`` is LUTE's ``JIDSlurmOperator._sub_overridable_arguments``
and ``create_control_doc`` (slac-lcls/lute, workflows/airflow/operators/
jidoperators.py) ported to plain functions. Our documents must equal LUTE's
except for the deliberate ``--nodes=1-N`` (LUTE writes ``0-N``) and the
stable ids.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from lute.airflow.control_document import (
    ControlDocumentError,
    StepIdentity,
    apply_slurm_caps,
    build_control_document,
    managed_task_name,
)
from tests.unit.airflow.support import REPO_ROOT


def _lute_sub_overridable_arguments(
    slurm_param_str: str,
    max_cores: int | None,
    max_nodes: int | None,
    require_partition: str | None,
) -> str:
    """LUTE's algorithm, line for line."""
    if max_cores is not None:
        pattern: str = r"(?<=\bntasks=)\d+"
        try:
            ntasks = int(re.findall(pattern, slurm_param_str)[0])
            if ntasks > max_cores:
                slurm_param_str = re.sub(pattern, f"{max_cores}", slurm_param_str)
        except IndexError:
            ntasks = 1
            slurm_param_str = f"{slurm_param_str} --ntasks={ntasks}"
    if max_nodes is not None:
        pattern = r"nodes=\S+"
        try:
            _ = re.findall(pattern, slurm_param_str)[0]
            slurm_param_str = re.sub(pattern, f"nodes=0-{max_nodes}", slurm_param_str)
        except IndexError:
            slurm_param_str = f"{slurm_param_str} --nodes=0-{max_nodes}"
    if require_partition is not None:
        pattern = r"partition=\S+"
        try:
            _ = re.findall(pattern, slurm_param_str)[0]
            slurm_param_str = re.sub(pattern, f"partition={require_partition}", slurm_param_str)
        except IndexError:
            slurm_param_str = f"{slurm_param_str} --partition={require_partition}"
    return slurm_param_str


def _lute_reference(
    conf: dict[str, Any],
    task_id: str,
    user: str,
    max_cores: int | None = None,
    max_nodes: int | None = None,
    require_partition: str | None = None,
    custom_slurm_params: str = "",
) -> dict[str, Any]:
    """LUTE's create_control_doc, ids left as placeholders."""
    lute_task_id = task_id.split(".")[-1] if "." in task_id else task_id
    lute_location = conf.get("lute_location", "/sdf/group/lcls/ds/tools/lute/latest")
    lute_params = conf.get("lute_params", {})
    config_path = lute_params["config_file"]
    if lute_params["debug"]:
        lute_param_str = f"--taskname {lute_task_id} --config {config_path} --debug"
    else:
        lute_param_str = f"--taskname {lute_task_id} --config {config_path}"
    if custom_slurm_params:
        slurm_param_str = custom_slurm_params
    else:
        slurm_param_str = " ".join(conf.get("slurm_params"))
        slurm_param_str = _lute_sub_overridable_arguments(
            slurm_param_str, max_cores, max_nodes, require_partition
        )
    return {
        "_id": "<uuid>",
        "arp_root_job_id": conf.get("ARP_ROOT_JOB_ID"),
        "experiment": conf.get("experiment"),
        "run_num": conf.get("run_id"),
        "user": conf.get("user"),
        "status": "",
        "tool_id": "",
        "def_id": "<uuid>",
        "def": {
            "_id": "<uuid>",
            "name": lute_task_id,
            "executable": f"{lute_location}/launch_scripts/submit_slurm.sh",
            "trigger": "MANUAL",
            "location": conf.get("ARP_LOCATION", "S3DF"),
            "parameters": f"{lute_param_str} {slurm_param_str}",
            "run_as_user": user,
        },
    }


def _conf(slurm_params: list[str], debug: bool = False, **extra: Any) -> dict[str, Any]:
    conf = {
        "experiment": "xpptut15",
        "run_id": "12",
        "ARP_ROOT_JOB_ID": "root-1",
        "ARP_LOCATION": "S3DF",
        "user": "scientist",
        "lute_location": "/opt/lute",
        "lute_params": {"config_file": "/data/cfg/test.yaml", "debug": debug},
        "slurm_params": slurm_params,
    }
    conf.update(extra)
    return conf


IDENTITY = StepIdentity(dag_id="lute_test", run_id="manual__1", task_id="Tester", try_number=1)

# (slurm_params, max_cores, max_nodes, require_partition, custom, task_id, debug)
CASES = [
    (["--partition=milano", "--ntasks=64"], None, None, None, "", "Tester", False),
    (["--partition=milano", "--ntasks=64"], 8, None, None, "", "Tester", True),
    (["--partition=milano", "--ntasks=4"], 8, None, None, "", "Tester", False),
    (["--partition=milano", "--ntasks=8"], 8, None, None, "", "Tester", False),
    # no --ntasks: LUTE adds --ntasks=1
    (["--partition=milano", "--account=lcls:data"], 8, None, None, "", "Tester", False),
    # "--ntasks 64" (space) is not matched by LUTE's pattern: --ntasks=1 is appended
    (["--partition=milano", "--ntasks", "64"], 8, None, None, "", "Tester", False),
    # no --nodes: added as 1-N
    (["--partition=milano", "--ntasks=64"], 8, 1, None, "", "Tester", False),
    # --nodes present: replaced by 1-N
    (["--partition=milano", "--nodes=4", "--ntasks=64"], None, 2, None, "", "Tester", False),
    (["--partition=milano", "--nodes=0-8"], None, 2, None, "", "Tester", False),
    # partition forced, present or not
    (["--partition=milano", "--ntasks=64"], None, None, "roma", "", "Tester", False),
    (["--ntasks=64"], None, None, "roma", "", "Tester", False),
    # everything at once
    (["--partition=milano", "--ntasks=100", "--nodes=3"], 16, 1, "debug", "", "Tester", True),
    # custom params replace the run's and skip the caps
    (["--partition=milano", "--ntasks=100"], 4, 1, "roma", "--partition=debug --ntasks=2",
     "Tester", False),
    # task-group prefixes are stripped from the managed task name
    (["--partition=milano"], None, None, None, "", "group.Tester", False),
    (["--partition=milano"], 2, 1, None, "", "outer.inner.BinaryTester", False),
    # no Slurm arguments at all
    ([], None, None, None, "", "Tester", False),
    ([], 2, 1, "debug", "", "Tester", False),
]


def _normalize_ids(doc: dict[str, Any]) -> dict[str, Any]:
    doc = {**doc, "def": dict(doc["def"])}
    for key in ("_id", "def_id"):
        uuid.UUID(doc[key])
        doc[key] = "<uuid>"
    uuid.UUID(doc["def"]["_id"])
    doc["def"]["_id"] = "<uuid>"
    return doc


@pytest.mark.parametrize(
    ("slurm", "max_cores", "max_nodes", "partition", "custom", "task_id", "debug"), CASES
)
def test_matches_lute_except_node_lower_bound(
    slurm, max_cores, max_nodes, partition, custom, task_id, debug
) -> None:
    conf = _conf(slurm, debug=debug)
    ours = build_control_document(
        conf,
        task_id,
        IDENTITY,
        user="airflow",
        max_cores=max_cores,
        max_nodes=max_nodes,
        require_partition=partition,
        custom_slurm_params=custom,
    )
    reference = _lute_reference(
        conf, task_id, "airflow", max_cores, max_nodes, partition, custom
    )
    reference["def"]["parameters"] = reference["def"]["parameters"].replace(
        "nodes=0-", "nodes=1-"
    )
    assert _normalize_ids(ours) == reference
    assert "nodes=0-" not in ours["def"]["parameters"]


def test_caps_by_example() -> None:
    assert apply_slurm_caps("--partition=milano --ntasks=64", 8, 2, None) == (
        "--partition=milano --ntasks=8 --nodes=1-2"
    )
    assert apply_slurm_caps("--nodes=0-4", None, 3, "roma") == "--nodes=1-3 --partition=roma"
    assert apply_slurm_caps("", 4, None, None) == " --ntasks=1"


def test_ids_are_stable_per_try_and_differ_between_tries() -> None:
    conf = _conf(["--partition=debug"])
    first = build_control_document(conf, "Tester", IDENTITY, user="u")
    again = build_control_document(conf, "Tester", IDENTITY, user="u")
    retry = build_control_document(
        conf, "Tester", StepIdentity("lute_test", "manual__1", "Tester", 2), user="u"
    )
    other_run = build_control_document(
        conf, "Tester", StepIdentity("lute_test", "manual__2", "Tester", 1), user="u"
    )
    assert first == again
    assert len({first["_id"], retry["_id"], other_run["_id"]}) == 3
    assert len({first["_id"], first["def_id"], first["def"]["_id"]}) == 3


def test_without_lute_location_this_install_launcher_is_named() -> None:
    conf = _conf([])
    del conf["lute_location"]
    doc = build_control_document(conf, "Tester", IDENTITY, user="u")
    launcher = REPO_ROOT / "launch_scripts" / "submit_slurm.sh"
    assert doc["def"]["executable"] == str(launcher)
    assert launcher.is_file()


def test_slurm_params_may_be_a_string_or_missing() -> None:
    conf = _conf([])
    conf["slurm_params"] = "--partition=debug --ntasks=3"
    doc = build_control_document(conf, "Tester", IDENTITY, user="u", max_cores=2)
    assert doc["def"]["parameters"].endswith("--partition=debug --ntasks=2")
    del conf["slurm_params"]
    doc = build_control_document(conf, "Tester", IDENTITY, user="u", max_cores=2)
    assert doc["def"]["parameters"].endswith("--ntasks=1")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"lute_params": {}}, "config_file"),
        ({"lute_params": None}, "config_file"),
        ({"experiment": None}, "experiment"),
        ({"slurm_params": 5}, "slurm_params"),
    ],
)
def test_missing_conf_is_a_clear_error(change: dict[str, Any], fragment: str) -> None:
    conf = _conf([])
    conf.update(change)
    with pytest.raises(ControlDocumentError, match=fragment):
        build_control_document(conf, "Tester", IDENTITY, user="u")


def test_managed_task_name_strips_groups() -> None:
    assert managed_task_name("Tester") == "Tester"
    assert managed_task_name("s01.Sleeper") == "Sleeper"
    assert managed_task_name("a.b.PeakFinder") == "PeakFinder"


@dataclass
class _TI:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int = 1
    map_index: int = -1


@dataclass
class _DagRun:
    conf: dict[str, Any]


def test_operator_in_a_task_group_builds_the_document_of_its_managed_task() -> None:
    from airflow.sdk import DAG, TaskGroup

    from lute.airflow.operator import JIDSlurmOperator

    with DAG(dag_id="lute_unit", schedule=None), TaskGroup(group_id="s01"):
        op = JIDSlurmOperator(task_id="Sleeper", max_cores=1, max_nodes=1, user="airflow")
    assert op.task_id == "s01.Sleeper"
    assert op.lute_task_id == "Sleeper"
    conf = _conf(["--partition=debug", "--ntasks=4"])
    context = {"ti": _TI("lute_unit", "r1", op.task_id), "dag_run": _DagRun(conf)}
    doc = op.control_document(context)
    expected = _lute_reference(conf, "Sleeper", "airflow", 1, 1)
    expected["def"]["parameters"] = expected["def"]["parameters"].replace("nodes=0-", "nodes=1-")
    assert _normalize_ids(doc) == expected
    assert doc["_id"] == StepIdentity("lute_unit", "r1", "s01.Sleeper", 1).uuid("job")


def test_token_is_not_a_templated_field() -> None:
    from lute.airflow.operator import JIDSlurmOperator

    fields = set(JIDSlurmOperator.template_fields)
    assert not fields & {"token", "Authorization", "jid_conn_id"}
