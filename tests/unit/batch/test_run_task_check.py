"""``lute-run-task --list`` and ``--check``: the catalog, and a config checked without running."""

from __future__ import annotations

import io

import pytest

from lute.catalog import entries, print_catalog
from lute.io.db import ResultsDB
from lute.run_task import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_list_shows_built_in_and_package_managed_tasks_with_their_package(
    facility, capsys
) -> None:
    code, out, _ = _run(capsys, "--list")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "PeakFinder" in rows and "FindPeaks" in rows["PeakFinder"]
    assert "(built in)" in rows["PeakFinder"]
    assert "Greet" in rows["Greeter"] and "facility-tasks" in rows["Greeter"]


def test_a_package_whose_managed_task_cannot_load_is_listed_with_its_error(
    facility, capsys
) -> None:
    (facility / "facility_pkg" / "managed.py").write_text("import no_such_module_here\n")
    by_name = {e.managed_task: e for e in entries()}
    assert "no_such_module_here" in by_name["Greeter"].task
    assert by_name["Tester"].task == "Test"
    stream = io.StringIO()
    print_catalog(stream)
    assert "Tester" in stream.getvalue()


def test_a_good_config_checks_ok_and_nothing_is_recorded(make_config, capsys) -> None:
    path = make_config({"Test": {"float_var": 0.5}, "FindPeaks": {"window": 3}})
    code, out, err = _run(capsys, "--check", "-c", str(path))
    assert (code, err) == (0, "")
    assert "OK" in out
    assert not (path.parent.parent / "work" / "lute.db").exists()


def test_every_problem_is_one_line_naming_task_key_and_what_is_wrong(make_config, capsys) -> None:
    path = make_config(
        {
            "Test": {"flot_var": 0.5, "compound_var": {"int_var": "many"}},
            "FindPeaks": {"window": 999},
            "SimulateFrames": {"peak_intensity": [3000.0, 10.0]},
            "FindPeeks": {},
        }
    )
    code, _, err = _run(capsys, "--check", "-c", str(path))
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 6, err
    assert "Task Test: key flot_var: not a parameter of Test; did you mean 'float_var'" in err
    assert "Task Test: key compound_var.int_var: Input should be a valid integer" in err
    assert "Task FindPeaks: key window: Input should be less than or equal to 20" in err
    assert "Task SimulateFrames" in err and "0 < min <= max" in err
    assert "Task FindPeeks: no Task of this name; did you mean 'FindPeaks'?" in err
    assert lines[-1].endswith("5 problem(s); nothing was run")


def test_inputs_left_to_an_upstream_steps_output_are_fine(make_config, capsys) -> None:
    # in_file / peaks_file default to outputs recorded by earlier steps of the run
    path = make_config({"FindPeaks": {}, "SummarizePeaks": {}, "TestReadOutput": {}})
    code, _, err = _run(capsys, "--check", "-c", str(path))
    assert (code, err) == (0, ""), err


def test_a_run_still_refuses_the_missing_upstream_output(make_config) -> None:
    from lute.io.config import ConfigError, load_config
    from lute.io.validation import validate_parameters

    config = load_config(make_config({"FindPeaks": {}}))
    with ResultsDB(config.work_dir / "lute.db") as db, pytest.raises(ConfigError) as err:
        validate_parameters(config, "FindPeaks", db=db)
    assert "run SimulateFrames first" in str(err.value)


def test_with_a_managed_task_only_its_tasks_section_is_checked(make_config, capsys) -> None:
    path = make_config({"Test": {"flot_var": 1}, "FindPeaks": {"window": 2}})
    assert _run(capsys, "--check", "-c", str(path), "-t", "PeakFinder")[0] == 0
    code, _, err = _run(capsys, "--check", "-c", str(path), "-t", "Tester")
    assert code == 2 and "key flot_var" in err
    code, _, err = _run(capsys, "--check", "-c", str(path), "-t", "Testr")
    assert code == 2 and "Did you mean: Tester" in err


def test_an_unresolved_reference_and_an_unreadable_file_are_problems(
    make_config, capsys, tmp_path
) -> None:
    path = make_config({"Test": {"str_var": "{{ Nope.x }}"}})
    code, _, err = _run(capsys, "--check", "-c", str(path))
    assert code == 2 and "Task Test: key str_var: unresolved substitution" in err
    code, _, err = _run(capsys, "--check", "-c", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read config" in err


def test_check_needs_a_config_and_a_run_needs_a_task(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--check"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["-c", "x.yaml"])
