"""Configs written for LUTE: ``{{ $RUN }}`` under the ARP, and Tasks that are not run."""

from __future__ import annotations

from pathlib import Path

import pytest

from lute.io.config import ConfigError, ConfigWarning, load_config
from lute.io.validation import validate_parameters

# the header of LUTE's config/test.yaml, verbatim but for work_dir
LUTE_HEADER = """%YAML 1.3
---
title: "LUTE Task Configuration" # Include experiment description if desired
experiment: "{{ $EXPERIMENT }}"
run: "{{ $RUN }}"
date: "2023/10/25"
lute_version: 0.1      # Do not be change unless need to force older version
task_timeout: 600
work_dir: "../work"
...
---
"""

TASKS = """Test:
  float_var: 0.01
  str_var: "test"
  compound_var:
    int_var: 10
    dict_var: {"a": "b"}
  throw_error: False # Set True to test Task failure

IndexCCTBXXFEL:
  data_spec:
    experiment: "{{ experiment }}"
    run: "{{ run }}"
    detector_address: "Rayonix"

SubmitSMD:
  directory: "{{ $SMD_OUTPUT_DIR }}/{{ run:04d }}"
...
"""


@pytest.fixture
def lute_config(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "test.yaml"
    path.write_text(LUTE_HEADER + TASKS)
    return path


@pytest.fixture
def arp_env() -> dict[str, str]:
    """What the ARP's job sees: RUN_NUM=<run>_<time>, and no RUN."""
    return {"EXPERIMENT": "mfxl1001021", "RUN_NUM": "12_2026-01-21T08:01:17.123456"}


def test_run_resolves_from_run_num_as_for_lute(lute_config: Path, arp_env) -> None:
    with pytest.warns(ConfigWarning, match="SMD_OUTPUT_DIR"):
        config = load_config(lute_config, environ=arp_env)
    assert (config.header.experiment, config.header.run) == ("mfxl1001021", "12")
    assert config.tasks["IndexCCTBXXFEL"]["data_spec"]["run"] == "12"


def test_an_unresolved_task_fails_only_itself(lute_config: Path, arp_env) -> None:
    with pytest.warns(ConfigWarning, match="Task SubmitSMD cannot run"):
        config = load_config(lute_config, environ=arp_env)
    assert "SubmitSMD" in config.tasks
    params = validate_parameters(config, "Test")
    assert params.str_var == "test"
    with pytest.raises(ConfigError, match="SMD_OUTPUT_DIR is not set") as info:
        config.tasks["SubmitSMD"]
    assert (info.value.task, info.value.key) == ("SubmitSMD", "directory")


def test_a_task_reading_an_unresolved_one_fails_too(tmp_path: Path, arp_env) -> None:
    (tmp_path / "work").mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(LUTE_HEADER.replace("../work", "work") + TASKS.replace(
        'str_var: "test"', 'str_var: "{{ SubmitSMD.directory }}"'))
    with pytest.warns(ConfigWarning):
        config = load_config(path, environ=arp_env)
    with pytest.raises(ConfigError, match="SMD_OUTPUT_DIR"):
        validate_parameters(config, "Test")


def test_run_given_by_run_wins(lute_config: Path, arp_env) -> None:
    with pytest.warns(ConfigWarning):
        config = load_config(lute_config, environ={**arp_env, "RUN": "99"})
    assert config.header.run == "99"


def test_unresolved_experiment_warns_and_falls_back(tmp_path: Path, arp_env) -> None:
    (tmp_path / "work").mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(LUTE_HEADER.replace("../work", "work").replace(
        "{{ $EXPERIMENT }}", "{{ $EXP_NOT_SET }}") + "Test: {}\n...\n")
    with pytest.warns(ConfigWarning, match=r"EXP_NOT_SET is not set; using \$EXPERIMENT"):
        config = load_config(path, environ=arp_env)
    assert config.header.experiment == "mfxl1001021"


def test_without_run_num_the_run_is_still_an_error(lute_config: Path) -> None:
    with pytest.warns(ConfigWarning), pytest.raises(ConfigError, match="RUN_NUM") as info:
        load_config(lute_config, environ={"EXPERIMENT": "mfx"})
    assert info.value.key == "run"


def test_other_header_keys_stay_errors(tmp_path: Path, arp_env) -> None:
    (tmp_path / "work").mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(LUTE_HEADER.replace('"../work"', '"{{ $NO_SUCH_DIR }}"') + "Test: {}\n...\n")
    with pytest.raises(ConfigError, match="NO_SUCH_DIR is not set") as info:
        load_config(path, environ=arp_env)
    assert info.value.key == "work_dir"
