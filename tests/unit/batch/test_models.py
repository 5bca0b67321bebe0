"""Parameter models: validation errors, LUTE_ overrides, defaults from the results DB."""

from __future__ import annotations

from pathlib import Path

import pytest

from lute.io.config import ConfigError, load_config
from lute.io.db import ResultsDB
from lute.io.models import model_for, model_task_names
from lute.io.validation import environment_overrides, validate_parameters
from lute.managed_tasks import managed_tasks
from lute.tasks.registry import task_names


def test_every_task_has_a_model_and_every_managed_task_a_task():
    assert model_task_names() == task_names()
    for executor in managed_tasks().values():
        assert executor.task_name in task_names()


def test_valid_nested_parameters(make_config):
    cfg = load_config(make_config({"Test": {"compound_var": {"int_var": "5"}}}))
    params = validate_parameters(cfg, "Test")
    assert params.compound_var.int_var == 5
    assert params.throw_error is False


def test_type_error_names_file_task_and_nested_key(make_config):
    path = make_config({"Test": {"compound_var": {"int_var": "many"}}})
    with pytest.raises(ConfigError) as err:
        validate_parameters(load_config(path), "Test")
    assert (err.value.task, err.value.key) == ("Test", "compound_var.int_var")
    assert str(path) in str(err.value)


def test_unknown_parameter_is_an_error(make_config):
    with pytest.raises(ConfigError) as err:
        validate_parameters(load_config(make_config({"Sleep": {"secnods": 1}})), "Sleep")
    assert err.value.key == "secnods"
    assert "Extra inputs" in err.value.message


def test_constraint_error(make_config):
    with pytest.raises(ConfigError) as err:
        validate_parameters(load_config(make_config({"Sleep": {"seconds": -1}})), "Sleep")
    assert err.value.key == "seconds"


def test_environment_override_beats_config(make_config, monkeypatch):
    cfg = load_config(make_config({"Test": {"throw_error": False, "str_var": "cfg"}}))
    monkeypatch.setenv("lute_STR_VAR", "from-env")
    monkeypatch.setenv("LUTE_compound_var", '{"int_var": 99}')
    params = validate_parameters(cfg, "Test")
    assert params.str_var == "from-env"
    assert params.compound_var.int_var == 99
    # an executor's own update applies only where it is passed
    assert validate_parameters(cfg, "Test", env_updates={"LUTE_throw_error": "true"}).throw_error
    assert not validate_parameters(cfg, "Test").throw_error


def test_environment_override_is_validated(make_config):
    cfg = load_config(make_config({}))
    with pytest.raises(ConfigError) as err:
        validate_parameters(cfg, "Sleep", env_updates={"LUTE_seconds": "soon"})
    assert err.value.key == "seconds"


def test_environment_overrides_only_known_fields():
    env = {"LUTE_LOG_DIR": "/x", "LUTE_seconds": "2", "OTHER": "1"}
    assert environment_overrides(["seconds", "print_interval"], env) == {"seconds": "2"}


def test_output_defaults_live_in_the_work_dir(make_config, tmp_path):
    params = validate_parameters(load_config(make_config({})), "TestWriteOutput")
    assert Path(params.out_file) == tmp_path / "work" / "xpptest01_r0007" / "test_output.txt"


def test_input_defaults_to_recorded_output(make_config, tmp_path):
    cfg = load_config(make_config({}))
    db = ResultsDB.for_work_dir(cfg.work_dir)
    with pytest.raises(ConfigError) as err:
        validate_parameters(cfg, "TestReadOutput", db=db)
    assert err.value.key == "in_file"
    assert "TestWriteOutput" in err.value.message
    # a completed writer for another run does not count
    other = db.start_run(
        managed_task="WriteTester",
        task="TestWriteOutput",
        experiment="xpptest01",
        run="8",
        params={},
    )
    db.finish_run(other, status="COMPLETED", exit_code=0, outputs={"out_file": "/other"})
    failed = db.start_run(
        managed_task="WriteTester",
        task="TestWriteOutput",
        experiment="xpptest01",
        run="7",
        params={},
    )
    db.finish_run(failed, status="FAILED", exit_code=1, outputs={"out_file": "/failed"})
    with pytest.raises(ConfigError):
        validate_parameters(cfg, "TestReadOutput", db=db)
    done = db.start_run(
        managed_task="WriteTester",
        task="TestWriteOutput",
        experiment="xpptest01",
        run="7",
        params={},
    )
    db.finish_run(done, status="COMPLETED", exit_code=0, outputs={"out_file": "/recorded"})
    assert validate_parameters(cfg, "TestReadOutput", db=db).in_file == "/recorded"
    # an explicit (relative) value wins and resolves against the work dir
    cfg.tasks["TestReadOutput"] = {"in_file": "mine.txt"}
    assert validate_parameters(cfg, "TestReadOutput", db=db).in_file == str(
        tmp_path / "work" / "mine.txt"
    )


def test_optional_recorded_input(make_config):
    cfg = load_config(make_config({"SummarizePeaks": {"peaks_file": "/p.csv"}}))
    db = ResultsDB.for_work_dir(cfg.work_dir)
    assert validate_parameters(cfg, "SummarizePeaks", db=db).stats_file is None
    rid = db.start_run(
        managed_task="FrameStatistician",
        task="ComputeFrameStatistics",
        experiment="xpptest01",
        run="7",
        params={},
    )
    db.finish_run(rid, status="COMPLETED", exit_code=0, outputs={"stats_file": "/s.csv"})
    assert validate_parameters(cfg, "SummarizePeaks", db=db).stats_file == "/s.csv"


def test_simulate_frames_checks_intensity_range(make_config):
    cfg = load_config(make_config({"SimulateFrames": {"peak_intensity": [500, 100]}}))
    with pytest.raises(ConfigError, match="peak_intensity"):
        validate_parameters(cfg, "SimulateFrames")


def test_third_party_field_metadata():
    fields = model_for("TestBinary").model_fields
    assert fields["long_format"].json_schema_extra == {"flag": "-l"}
    assert fields["path"].json_schema_extra == {"positional": True}


def test_managed_tasks_import_is_cheap():
    import subprocess
    import sys

    code = (
        "import sys, lute.managed_tasks as m; names = m.managed_task_names();"
        "heavy = [x for x in ('numpy', 'matplotlib', 'pydantic', 'yaml', 'lute.tasks.base')"
        " if x in sys.modules]; print(len(names), heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "11 []"
