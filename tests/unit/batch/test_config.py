"""Config loading: every substitution form, header fallbacks, and every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from lute.io.config import ConfigError, ConfigWarning, load_config


def test_substitution_forms(make_config, monkeypatch):
    monkeypatch.setenv("DETECTOR", "epix10k")
    path = make_config(
        {
            "Test": {
                "str_var": "{{ $DETECTOR }}/{{ experiment }}/r{{ run:04d }}",
                "float_var": "{{ compound_var.int_var }}",
                "compound_var": {"int_var": 12, "dict_var": {"x": "{{ Other.nested.value }}"}},
                "list": ["{{ run }}", "{{ $DETECTOR }}-{{ Other.nested.value:>5 }}", 3],
            },
            "Other": {"nested": {"value": 2.5}, "copy": "{{ Test.compound_var.int_var:03d }}"},
        }
    )
    cfg = load_config(path)
    test = cfg.tasks["Test"]
    assert test["str_var"] == "epix10k/xpptest01/r0007"
    # a whole-string reference keeps the referenced type
    assert test["float_var"] == 12
    assert test["compound_var"]["dict_var"]["x"] == 2.5
    assert test["list"] == ["7", "epix10k-  2.5", 3]
    assert cfg.tasks["Other"]["copy"] == "012"


def test_header_keys_and_work_dir_resolve_against_config_dir(make_config, tmp_path):
    path = make_config(
        {"Test": {"str_var": "{{ work_dir }}|{{ title }}|{{ date }}"}}, date="2026-01-02"
    )
    cfg = load_config(path)
    assert cfg.work_dir == tmp_path / "work"
    assert cfg.tasks["Test"]["str_var"] == f"{tmp_path / 'work'}|unit|2026-01-02"


def test_header_fallbacks_from_environment(make_config, monkeypatch):
    monkeypatch.setenv("RUN_NUM", "42_2026-01-01T00:00")
    cfg = load_config(make_config({}))
    assert (cfg.header.experiment, cfg.header.run) == ("xpptest01", "42")


def test_header_values_win_over_environment(make_config):
    cfg = load_config(make_config({}, experiment="mfx1", run=3))
    assert (cfg.header.experiment, cfg.header.run) == ("mfx1", "3")


def test_header_may_substitute_environment(make_config, monkeypatch):
    monkeypatch.setenv("MY_EXP", "cxi9")
    cfg = load_config(make_config({}, experiment="{{ $MY_EXP }}"))
    assert cfg.header.experiment == "cxi9"


def test_missing_experiment_is_an_error(make_config, monkeypatch):
    path = make_config({})
    monkeypatch.delenv("EXPERIMENT")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "experiment"
    assert "$EXPERIMENT" in str(err.value)
    assert str(path) in str(err.value)


def test_missing_run_is_an_error(make_config, monkeypatch):
    path = make_config({})
    monkeypatch.delenv("RUN_NUM")
    with pytest.raises(ConfigError, match="RUN_NUM") as err:
        load_config(path)
    assert err.value.key == "run"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("{{ $LUTE_UNIT_UNSET_VAR }}", "LUTE_UNIT_UNSET_VAR is not set"),
        ("{{ nothing_here }}", "'nothing_here'"),
        ("{{ Other.missing.key }}", "no parameter 'missing'"),
        ("{{ NoSuchTask.key }}", "NoSuchTask.key"),
        ("prefix {{ $LUTE_UNIT_UNSET_VAR }} suffix", "LUTE_UNIT_UNSET_VAR"),
        ("{{ }}", "empty substitution"),
    ],
)
def test_unresolved_reference_names_file_task_and_key(make_config, value, fragment):
    path = make_config({"Test": {"compound_var": {"dict_var": {"k": [value]}}}, "Other": {"a": 1}})
    with pytest.warns(ConfigWarning):
        config = load_config(path)
    with pytest.raises(ConfigError) as err:
        config.tasks["Test"]  # the error is the Task's: raised when it is read
    assert err.value.task == "Test"
    assert err.value.key == "compound_var.dict_var.k[0]"
    assert err.value.file == str(path)
    assert fragment in str(err.value)


def test_circular_reference_is_an_error(make_config):
    path = make_config({"A": {"x": "{{ B.y }}"}, "B": {"y": "{{ A.x }}"}})
    with pytest.warns(ConfigWarning), pytest.raises(ConfigError, match="circular"):
        load_config(path).tasks["A"]


def test_bad_format_spec_is_an_error(make_config):
    path = make_config({"Test": {"str_var": "{{ experiment:04d }}"}})
    with pytest.warns(ConfigWarning), pytest.raises(ConfigError, match="cannot format") as err:
        load_config(path).tasks["Test"]
    assert (err.value.task, err.value.key) == ("Test", "str_var")


def test_work_dir_must_exist(make_config, tmp_path):
    # an absolute work dir is created only below an existing parent
    path = make_config({}, work_dir=str(tmp_path / "no-parent" / "work"))
    with pytest.raises(ConfigError, match="does not exist") as err:
        load_config(path)
    assert err.value.key == "work_dir"


def test_work_dir_must_be_a_directory(make_config, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        load_config(make_config({}, work_dir=str(tmp_path / "afile")))


def test_unknown_header_key_is_an_error(make_config):
    with pytest.raises(ConfigError) as err:
        load_config(make_config({}, colour="blue"))
    assert err.value.key == "colour"


def test_single_document_is_an_error(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text("title: x\n")
    with pytest.raises(ConfigError, match="two YAML documents"):
        load_config(path)


def test_invalid_yaml_and_unsafe_tags_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("---\ntitle: [unclosed\n---\n{}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("---\ntitle: !!python/object/apply:os.system ['true']\n---\n{}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(unsafe)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_repository_example_configs_load(batch_env, tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[3] / "config"
    for name in ("test.yaml", "demo.yaml"):
        text = (root / name).read_text()
        # same file, but with a work dir that exists here
        copy = tmp_path / name
        copy.write_text(text.replace("../work_dirs/", "./wd_"))
        (tmp_path / f"wd_{Path(name).stem}").mkdir()
        cfg = load_config(copy)
        assert cfg.header.experiment == "xpptest01"
        assert cfg.tasks
