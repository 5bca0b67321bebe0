"""A missing work dir is created on first use where that is safe."""

from __future__ import annotations

import pytest

from lute.io.config import ConfigError, load_config


def test_a_relative_work_dir_is_created_with_its_parents(make_config, tmp_path) -> None:
    # config/test.yaml's ../work_dirs/test on a fresh checkout
    path = make_config({}, work_dir="../work_dirs/test")
    config = load_config(path)
    assert config.work_dir == tmp_path / "work_dirs" / "test"
    assert config.work_dir.is_dir()


def test_an_absolute_work_dir_is_created_below_an_existing_parent(make_config, tmp_path) -> None:
    work = tmp_path / "scratch" / "run_work"
    work.parent.mkdir()
    assert load_config(make_config({}, work_dir=str(work))).work_dir == work
    assert work.is_dir()


def test_an_absolute_work_dir_without_a_parent_is_an_error(make_config, tmp_path) -> None:
    work = tmp_path / "typo" / "work"
    with pytest.raises(ConfigError, match="nor does its parent") as err:
        load_config(make_config({}, work_dir=str(work)))
    assert (err.value.key, work.parent.exists()) == ("work_dir", False)


def test_a_work_dir_that_cannot_be_created_names_why(make_config, tmp_path) -> None:
    (tmp_path / "afile").write_text("x")  # a file where a parent directory should be
    with pytest.raises(ConfigError, match="cannot create work_dir") as err:
        load_config(make_config({}, work_dir="../afile/work"))
    assert err.value.key == "work_dir"
