"""ThirdPartyTask: argv from field metadata, template rendering, real program runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lute.tasks import test_tasks
from lute.tasks.base import TaskContext


def _task(tmp_path: Path, **params) -> test_tasks.TestBinary:
    values = {
        "executable": "/bin/ls",
        "long_format": True,
        "show_all": False,
        "path": str(tmp_path),
        "template_output": None,
        "template_values": {},
    }
    values.update(params)
    ctx = TaskContext(
        task_name="TestBinary",
        managed_task="BinaryTester",
        experiment="e1",
        run="5",
        work_dir=tmp_path,
    )
    return test_tasks.TestBinary(values, ctx)


def test_argv_from_field_metadata(tmp_path):
    assert _task(tmp_path).build_argv() == ["/bin/ls", "-l", str(tmp_path)]
    assert _task(tmp_path, long_format=False, show_all=True).build_argv() == [
        "/bin/ls",
        "-a",
        str(tmp_path),
    ]
    # values with shell metacharacters stay single argv items
    weird = str(tmp_path / "a b; rm -rf x")
    assert _task(tmp_path, path=weird).build_argv()[-1] == weird


def test_template_is_rendered_before_the_program_runs(tmp_path):
    out = tmp_path / "sub" / "conf.txt"
    task = _task(tmp_path, template_output=str(out), template_values={"threads": 4})
    result = task.execute()
    text = out.read_text()
    assert "executable = /bin/ls" in text and "threads = 4" in text and "e1 run 5" in text
    assert result.outputs["template_output"] == str(out)
    assert result.summary["returncode"] == 0


def test_no_template_without_output(tmp_path):
    assert _task(tmp_path).render_template() is None


def test_program_failure_raises(tmp_path):
    with pytest.raises(RuntimeError, match="exited with code"):
        _task(tmp_path, path=str(tmp_path / "missing")).execute()
