"""``conf["kerb_file"]`` reaches ``def.parameters`` as LUTE's operator puts it: ``-K <file>``."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from lute.airflow.control_document import (
    ControlDocumentError,
    StepIdentity,
    build_control_document,
)

IDENTITY = StepIdentity("lute_test", "run1", "Tester", 1)


def _conf(**extra: Any) -> dict[str, Any]:
    return {
        "experiment": "mfxl1001021",
        "run_id": "12_20260101T000000.000000Z",
        "ARP_ROOT_JOB_ID": "root",
        "user": "alice",
        "lute_params": {"config_file": "/data/cfg/test.yaml", "debug": True},
        "slurm_params": ["--partition=milano", "--ntasks=4"],
        **extra,
    }


def _parameters(conf: dict[str, Any], **options: Any) -> str:
    return build_control_document(conf, "Tester", IDENTITY, user="alice", **options)[
        "def"]["parameters"]


def test_kerb_file_goes_after_the_task_arguments_before_slurms() -> None:
    params = _parameters(_conf(kerb_file="FILE:/home/alice/.cache/lute/krb5/krb5cc_lute_x1"))
    assert params == ("--taskname Tester --config /data/cfg/test.yaml --debug "
                      "-K FILE:/home/alice/.cache/lute/krb5/krb5cc_lute_x1 "
                      "--partition=milano --ntasks=4")


def test_kerb_file_with_custom_slurm_params_too() -> None:
    params = _parameters(_conf(kerb_file="/k/cc"), custom_slurm_params="--ntasks=1")
    assert params.endswith("--debug -K /k/cc --ntasks=1")


@pytest.mark.parametrize("absent", [{}, {"kerb_file": None}, {"kerb_file": ""}])
def test_no_kerb_file_no_k(absent: dict[str, Any]) -> None:
    assert "-K" not in shlex.split(_parameters(_conf(**absent)))


def test_a_path_with_a_space_stays_one_argument() -> None:
    tokens = shlex.split(_parameters(_conf(kerb_file="FILE:/home/a b/cc")))
    assert tokens[tokens.index("-K") + 1] == "FILE:/home/a b/cc"


def test_a_kerb_file_that_is_not_a_path_is_refused() -> None:
    with pytest.raises(ControlDocumentError, match=r"kerb_file.*not int"):
        _parameters(_conf(kerb_file=12))
