"""The launcher's config check: misspelt names, bad values; values left to earlier results pass."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from lute.io.param_check import unknown_keys
from lute.launch.configcheck import ConfigCheckError, check_task_config
from lute.suggestions import close_names, did_you_mean
from tests.unit.launch.test_configcheck import ENV, _config


def test_a_misspelt_key_is_named_with_file_task_and_did_you_mean(tmp_path) -> None:
    path = _config(tmp_path, "ComputeFrameStatistics:\n  radial_bin: 64\n")
    with pytest.raises(ConfigCheckError) as err:
        check_task_config(path, ["FrameStatistician"], ENV)
    message = str(err.value)
    assert str(path) in message
    assert "Task ComputeFrameStatistics" in message
    assert "key radial_bin" in message
    assert "did you mean 'radial_bins'?" in message


def test_every_unknown_key_of_every_task_is_reported(tmp_path) -> None:
    body = "FindPeaks:\n  treshold_sigma: 8\n  zzz: 1\nTest:\n  flot_var: 0.5\n"
    path = _config(tmp_path, body)
    with pytest.raises(ConfigCheckError) as err:
        check_task_config(path, ["PeakFinder", "Tester"], ENV)
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert "key treshold_sigma" in lines[0] and "'threshold_sigma'" in lines[0]
    assert "key zzz" in lines[1] and "did you mean" not in lines[1]
    assert "Task Test: key flot_var" in lines[2] and "'float_var'" in lines[2]


def test_values_that_default_to_earlier_results_are_left_to_the_run(tmp_path) -> None:
    # FindPeaks' in_file defaults to SimulateFrames' recorded output, which
    # does not exist before the run: leaving it out is fine here
    path = _config(tmp_path, "FindPeaks:\n  window: 3\n")
    check_task_config(path, ["PeakFinder"], ENV)


def test_a_value_out_of_range_or_of_the_wrong_type_fails_the_check(tmp_path) -> None:
    path = _config(tmp_path, "FindPeaks:\n  window: 999\n  min_snr: lots\n")
    with pytest.raises(ConfigCheckError) as err:
        check_task_config(path, ["PeakFinder"], ENV)
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines
    assert "Task FindPeaks: key window: Input should be less than or equal to 20" in lines[0]
    assert "key min_snr" in lines[1] and "valid number" in lines[1]


def test_sections_of_tasks_the_workflow_does_not_run_are_not_checked(tmp_path) -> None:
    path = _config(tmp_path, "Test: {}\nFindPeaks:\n  bogus: 1\n")
    check_task_config(path, ["Tester"], ENV)


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 1


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: _Inner | None = None
    label: str = ""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def test_nested_sections_are_checked_with_dotted_keys() -> None:
    found = list(unknown_keys(_Outer, {"inner": {"sise": 2}, "label": "x"}))
    assert found == [("inner.sise", "; did you mean 'size'?")]


def test_a_model_that_allows_extra_keys_refuses_none() -> None:
    assert list(unknown_keys(_Open, {"anything": 1})) == []


def test_suggestions_ignore_case_and_give_nothing_when_far() -> None:
    assert close_names("TESTER", ["Tester", "Sleeper"]) == ["Tester"]
    assert did_you_mean("qqqq", ["Tester", "Sleeper"]) == ""
    assert did_you_mean("Testr", ["Tester", "Sleeper"]) == "; did you mean 'Tester'?"
