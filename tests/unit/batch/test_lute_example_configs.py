"""Configs shaped like LUTE's own examples run here where their Tasks exist.

LUTE ships a local test config (no ``run`` in its header, a Task section for
a binary that exists only at SLAC) and a substitution showcase (formats,
environment references, nested values, another Task's value). Both are
written here in LUTE's shape, run under an ARP-like environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lute.io.config import load_config

LOCAL_SHAPED = """%YAML 1.3
---
title: "LUTE Task Configuration" # as in LUTE's test_local.yaml
experiment: "TST12345"
date: "2023/10/25"
lute_version: 0.1.1
task_timeout: 600
work_dir: "{work_dir}"
...
---
Test:
  float_var: 0.01
  str_var: "test"
  compound_var:
    int_var: 10
    dict_var: {{"a": "b"}}
  throw_error: False

TestBinary:
  executable: "/sdf/home/someone/test_tasks/test_threads"
  p_arg1: 4

TestSocket:
  array_size: 8000
  num_arrays: 10
...
"""

SUBSTITUTIONS_SHAPED = """%YAML 1.3
---
title: "Configuration to Test YAML Substitution"
experiment: "TestYAMLSubs"
run: 12
date: "2024/05/01"
lute_version: 0.1.1
task_timeout: 600
work_dir: "{work_dir}"
...
---
OtherTask:
  useful_other_var: "USE ME!"

NonExistentTask:
  test_sub: "/path/to/{{{{ experiment }}}}/file_r{{{{ run:04d }}}}.input"
  test_env_sub: "/path/to/{{{{ $EXPERIMENT }}}}/file.input"
  test_nested:
    a: "outfile_{{{{ run }}}}_one.out"
    b:
      c: "outfile_{{{{ run }}}}_two.out"
      d: "{{{{ OtherTask.useful_other_var }}}}"
  test_fmt: "{{{{ run:04d }}}}"
  test_env_fmt: "{{{{ $RUN:04d }}}}"
...
"""

ARP_ENV = {"EXPERIMENT": "mfxl1001021", "RUN_NUM": "12_2026-01-21T08:01:17.123456"}


def _write(tmp_path: Path, name: str, template: str) -> Path:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(template.format(work_dir=work))
    return path


def test_the_local_test_config_runs_its_test_task(tmp_path: Path) -> None:
    config = _write(tmp_path, "test_local.yaml", LOCAL_SHAPED)
    env = {k: v for k, v in os.environ.items() if k not in ("RUN", "EXPERIMENT", "RUN_NUM")}
    env.update(ARP_ENV)
    done = subprocess.run(
        [sys.executable, "-m", "lute.run_task", "-c", str(config), "-t", "Tester"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the run comes from the ARP's RUN_NUM: the header has none
    assert "run 12" in done.stdout, done.stdout


def test_the_substitution_showcase_resolves_like_lute(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "test_var_subs.yaml", SUBSTITUTIONS_SHAPED),
                         environ=ARP_ENV)
    assert config.tasks["NonExistentTask"] == {
        "test_sub": "/path/to/TestYAMLSubs/file_r0012.input",
        "test_env_sub": "/path/to/mfxl1001021/file.input",
        "test_nested": {"a": "outfile_12_one.out",
                        "b": {"c": "outfile_12_two.out", "d": "USE ME!"}},
        "test_fmt": "0012",
        "test_env_fmt": "0012",  # $RUN, unset under the ARP, is RUN_NUM's run
    }
