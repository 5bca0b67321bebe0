"""Tasks, models and managed tasks of another installed package, found by entry points."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lute import extensions
from lute.extensions import ExtensionClashError
from lute.io.models import model_for, model_task_names
from lute.launch.configcheck import ConfigCheckError, check_task_config
from lute.managed_tasks import get_managed_task, managed_task_names, managed_tasks
from lute.tasks.registry import task_class, task_names
from tests.unit.batch.facility_dist import install_facility


def test_without_the_package_its_names_are_unknown() -> None:
    extensions.forget()
    assert "Greeter" not in managed_task_names()
    assert "Greet" not in task_names()


def test_the_registries_find_the_packages_task_model_and_managed_task(facility) -> None:
    assert "Greeter" in managed_task_names() and "Tester" in managed_task_names()
    assert get_managed_task("Greeter").task_name == "Greet"
    assert "Greeter" in managed_tasks()
    assert "Greet" in task_names() and "Greet" in model_task_names()
    assert task_class("Greet").__module__ == "facility_pkg.tasks"
    assert model_for("Greet").__name__ == "GreetParameters"


def test_listing_names_imports_none_of_the_packages_code(facility) -> None:
    managed_task_names()
    task_names()
    model_task_names()
    assert not [m for m in sys.modules if m.startswith("facility_pkg")]


def test_the_packages_parameter_names_are_checked_before_launch(facility, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(
        f"---\nexperiment: e\nrun: '1'\nwork_dir: {work}\n...\n---\nGreet:\n  nmae: x\n...\n"
    )
    with pytest.raises(ConfigCheckError, match=r"key nmae.*did you mean 'name'"):
        check_task_config(path, ["Greeter"], {})


def test_a_name_registered_twice_names_both_packages(facility, tmp_path) -> None:
    other = install_facility(tmp_path / "other", package="other_pkg", dist="other-tasks")
    sys.path.insert(0, str(other))
    try:
        extensions.forget()
        with pytest.raises(ExtensionClashError) as err:
            managed_task_names()
    finally:
        sys.path.remove(str(other))
    assert "facility-tasks" in str(err.value) and "other-tasks" in str(err.value)


def test_a_package_cannot_take_a_built_in_name(tmp_path, monkeypatch) -> None:
    site = install_facility(tmp_path / "site", managed="Tester", task="Test")
    monkeypatch.syspath_prepend(str(site))
    extensions.forget()
    try:
        with pytest.raises(ExtensionClashError, match="lute \\(built in\\) and facility-tasks"):
            managed_task_names()
    finally:
        monkeypatch.undo()
        extensions.forget()


def test_lute_run_task_runs_the_packages_managed_task(facility, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = tmp_path / "c.yaml"
    path.write_text(
        f"---\nexperiment: e\nrun: '1'\nwork_dir: {work}\n...\n---\n"
        "Greet:\n  name: beamline\n  repeat: 2\n...\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(facility), *sys.path]))
    done = subprocess.run(
        [sys.executable, "-m", "lute.run_task", "-c", str(path), "-t", "Greeter"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("hello beamline") == 2, output
