"""submit_slurm.sh argument checks that fail before any submission."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "launch_scripts" / "submit_slurm.sh"


@pytest.mark.parametrize(
    "args", [[], ["-c", "x.yaml"], ["-t", "Tester"], ["-c"], ["--partition=debug"]]
)
def test_missing_config_or_task_prints_usage_and_exits_2(args, tmp_path):
    result = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path, timeout=30
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage:" in result.stderr


def test_missing_config_file_and_bad_task_name(tmp_path):
    missing = subprocess.run(
        [str(SCRIPT), "-c", str(tmp_path / "no.yaml"), "-t", "Tester"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2 and "config not found" in missing.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("")
    bad = subprocess.run(
        [str(SCRIPT), "-c", str(cfg), "-t", "Tester;rm -rf /"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "invalid managed task name" in bad.stderr
    assert bad.stdout == ""
