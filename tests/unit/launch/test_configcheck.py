"""The config check the launcher runs before triggering anything."""

import pytest

from lute.launch.configcheck import ConfigCheckError, check_task_config, task_of

HEADER = """\
title: t
experiment: "{{ $EXPERIMENT }}"
run: "{{ $RUN_NUM }}"
work_dir: "WORK"
"""


def _config(tmp_path, body):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    path = tmp_path / "c.yaml"
    path.write_text("---\n" + HEADER.replace("WORK", str(work)) + "...\n---\n" + body + "...\n")
    return path


ENV = {"EXPERIMENT": "exp1", "RUN_NUM": "4"}


def test_managed_task_names_map_to_task_sections():
    assert task_of("Tester") == "Test"
    assert task_of("FailingTester") == "Test"
    assert task_of("PeakFinder") == "FindPeaks"
    with pytest.raises(KeyError):
        task_of("NoSuchManagedTask")


def test_good_config_passes(tmp_path):
    path = _config(tmp_path, "Test:\n  float_var: 0.5\nTestBinary: {}\n")
    check_task_config(path, ["Tester", "FailingTester", "BinaryTester"], ENV)


def test_missing_section_names_task_and_managed_task(tmp_path):
    path = _config(tmp_path, "Test: {}\n")
    with pytest.raises(ConfigCheckError) as err:
        check_task_config(path, ["Tester", "Sleeper"], ENV)
    assert "Sleep (for Sleeper)" in str(err.value)


def test_unknown_managed_task(tmp_path):
    path = _config(tmp_path, "Test: {}\n")
    with pytest.raises(ConfigCheckError, match="Bogus"):
        check_task_config(path, ["Bogus"], ENV)


def test_unparsable_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("---\ntitle: [unclosed\n")
    with pytest.raises(ConfigCheckError, match=r"bad\.yaml"):
        check_task_config(path, ["Tester"], ENV)


def test_unresolvable_substitution(tmp_path):
    path = _config(tmp_path, "Test:\n  str_var: '{{ Nope.x }}'\n")
    with pytest.raises(ConfigCheckError, match="Test"):
        check_task_config(path, ["Tester"], ENV)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigCheckError, match="no such config file"):
        check_task_config(tmp_path / "nope.yaml", ["Tester"], ENV)
