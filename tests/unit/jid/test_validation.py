"""Every validation rule of a control document, table-driven, through the real checker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jid_service.answers import status_of
from jid_service.errors import InvalidRequestError
from jid_service.models import ControlDocument
from jid_service.settings import JIDSettings
from jid_service.validation import (
    check_config_path,
    check_executable,
    known_task_names,
    parse_parameters,
    submit_spec,
)

from .conftest import LAUNCHER


def _params(config_root: Path, extra: str = "", task: str = "Tester") -> str:
    return f"--taskname {task} --config {config_root / 'test.yaml'} {extra}".strip()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", ()),
        ("--partition=debug", ("--partition=debug",)),
        ("--partition debug", ("--partition=debug",)),
        ("--partition=milano,roma", ("--partition=milano,roma",)),
        ("--account=lcls:data", ("--account=lcls:data",)),
        ("--ntasks=4 --cpus-per-task=2", ("--ntasks=4", "--cpus-per-task=2")),
        ("--nodes=2", ("--nodes=2",)),
        ("--nodes=1-4", ("--nodes=1-4",)),
        ("--nodes=0-4", ("--nodes=1-4",)),  # a 0 lower bound crashes Slurm 22.05
        ("--nodes 0-1", ("--nodes=1-1",)),
        ("--mem=4G", ("--mem=4G",)),
        ("--mem=2048", ("--mem=2048",)),
        ("--time=10", ("--time=10",)),
        ("--time=01:30:00", ("--time=01:30:00",)),
        ("--time=1-12:00", ("--time=1-12:00",)),
        ("--qos=normal --reservation=beam_time", ("--qos=normal", "--reservation=beam_time")),
        ("--constraint=a&b|c", ("--constraint=a&b|c",)),
        ("--gres=gpu:2", ("--gres=gpu:2",)),
        ("--exclusive", ("--exclusive",)),
        ("--exclusive=user", ("--exclusive=user",)),
        ("--debug", ()),
    ],
)
def test_allowed_parameters(settings: JIDSettings, config_root: Path, extra: str,
                            expected: tuple[str, ...]) -> None:
    task, config, debug, slurm = parse_parameters(_params(config_root, extra), settings)
    assert task == "Tester"
    assert config == (config_root / "test.yaml").resolve()
    assert slurm == expected
    assert debug == ("--debug" in extra)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("--output=/tmp/x", "--output"),
        ("--wrap=rm", "--wrap"),
        ("-Z debug", "'-Z'"),  # no such short form
        ("--partition", "--partition needs a value"),
        ("--partition=", "--partition needs a value"),
        ("--partition=deb;ug", "--partition"),
        ("--partition='$(touch x)'", "--partition"),
        ("--account=a b", "'b'"),
        ("--ntasks=0", "--ntasks"),
        ("--ntasks=-1", "--ntasks"),
        ("--ntasks=four", "--ntasks"),
        ("--nodes=0", "--nodes"),
        ("--nodes=3-1", "--nodes"),
        ("--nodes=1-2-3", "--nodes"),
        ("--mem=4X", "--mem"),
        ("--time=forever", "--time"),
        ("--gres=gpu`id`", "--gres"),
        ("--exclusive=all", "--exclusive"),
        ("--debug=1", "--debug"),
        ("stray", "'stray'"),
        ("--", "'--'"),
        ("--Partition=debug", "--Partition"),
        ("--taskname Tester", "--taskname given twice"),
        ("--config /etc/passwd", "--config given twice"),
        ("--partition=debug\n--output=x", "--output"),
        ("--partition='unterminated", "cannot be parsed"),
    ],
)
def test_rejected_parameters(settings: JIDSettings, config_root: Path, extra: str,
                             named: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_parameters(_params(config_root, extra), settings)
    assert status_of(info.value) == 422
    assert named in info.value.message


def test_allow_list_comes_from_settings(settings: JIDSettings, config_root: Path) -> None:
    narrowed = settings.model_copy(update={"slurm_allowed_options": ["partition"]})
    parse_parameters(_params(config_root, "--partition=debug"), narrowed)
    with pytest.raises(InvalidRequestError, match="--account"):
        parse_parameters(_params(config_root, "--account=x"), narrowed)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ("--config {cfg}", "--taskname is required"),
        ("--taskname Tester", "--config is required"),
        ("--taskname NoSuchTask --config {cfg}", "NoSuchTask"),
        ("--taskname 'Tester; rm -rf /' --config {cfg}", "not a known managed task"),
        ("--taskname", "--taskname needs a value"),
        ("--taskname Tester --config", "--config needs a value"),
    ],
)
def test_taskname_and_config_required(settings: JIDSettings, config_root: Path, params: str,
                                      named: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_parameters(params.format(cfg=config_root / "test.yaml"), settings)
    assert named in info.value.message


def test_every_documented_task_is_known() -> None:
    names = known_task_names()
    for name in ("Tester", "FailingTester", "Sleeper", "FrameSimulator", "PeakSummarizer"):
        assert name in names


def test_config_path_rules(settings: JIDSettings, config_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("x: 1\n")
    link = config_root / "link.yaml"
    os.symlink(outside, link)
    (config_root / "sub").mkdir()
    nested = config_root / "sub" / "ok.yaml"
    nested.write_text("x: 1\n")

    assert check_config_path(str(nested), settings) == nested.resolve()
    assert check_config_path(str(config_root / "sub" / ".." / "test.yaml"), settings) == (
        config_root / "test.yaml"
    ).resolve()
    cases = {
        str(outside): "not under an allowed config root",
        str(link): "not under an allowed config root",  # symlinks are resolved first
        str(config_root / ".." / "outside.yaml"): "not under an allowed config root",
        str(config_root / "missing.yaml"): "does not exist",
        str(config_root / "sub"): "is not a file",
        "test.yaml": "must be an absolute path",
        "a\x00b": "NUL",
    }
    for raw, message in cases.items():
        with pytest.raises(InvalidRequestError) as info:
            check_config_path(raw, settings)
        assert status_of(info.value) == 422
        assert message in info.value.message, raw


@pytest.mark.parametrize(
    "executable",
    [
        str(LAUNCHER),
        str(LAUNCHER.parent / "." / LAUNCHER.name),
        "/sdf/group/lcls/ds/tools/lute/latest/launch_scripts/submit_slurm.sh",
    ],
)
def test_accepted_executables(settings: JIDSettings, executable: str) -> None:
    check_executable(executable, settings)


@pytest.mark.parametrize(
    "executable",
    [
        "/bin/sh",
        "submit_slurm.sh",
        "myexecutable.sh",
        "/sdf/group/lcls/ds/tools/lute/latest/launch_scripts/../../evil/submit_slurm.sh",
        "/elsewhere/launch_scripts/submit_slurm.sh",
        "/sdf/group/lcls/ds/tools/lute/latest/launch_scripts/submit_slurm.sh; id",
        "/sdf/group/lcls/ds/tools/lute/latest/submit_slurm.sh",
    ],
)
def test_rejected_executables(settings: JIDSettings, executable: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_executable(executable, settings)
    assert status_of(info.value) == 422
    assert "def.executable" in info.value.message


def test_submit_spec_from_lute_document(settings: JIDSettings, doc) -> None:
    control = ControlDocument.model_validate(doc(params=None))
    spec = submit_spec(control, "exp1", "alice", settings)
    assert spec.job_key == control.id
    assert spec.taskname == "Tester"
    assert spec.run == "12"
    assert spec.user == "alice"
    assert spec.slurm_args == ("--partition=debug", "--ntasks=1")
    with pytest.raises(InvalidRequestError, match="path says 'exp2'"):
        submit_spec(control, "exp2", "alice", settings)
