"""The README's main job: launch_scripts/run_demo.sh, twice in a row."""

from __future__ import annotations

import os
import re
import subprocess

from lute.launch.processes import read_records
from lute.launch.stack import REPO_ROOT
from tests.integration.launch.support import stack_ports

RUN_DEMO = REPO_ROOT / "launch_scripts" / "run_demo.sh"


def _run_demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUN_DEMO)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=REPO_ROOT)


def test_run_demo_twice(tmp_path):
    state = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items()
           if k not in ("Authorization", "LUTE_LAUNCH_CONFIG", "EXPERIMENT", "RUN_NUM")}
    airflow_port, jid_port = stack_ports()
    env.update(LUTE_DEV_STATE_DIR=str(state), LUTE_DEMO_AIRFLOW_PORT=str(airflow_port),
               LUTE_DEMO_JID_PORT=str(jid_port), LUTE_DEMO_EXPERIMENT="cidemo",
               LUTE_DEMO_RUN=str(7000 + os.getpid() % 1000))
    out_dir = REPO_ROOT / "work_dirs" / "demo" / f"cidemo_r{int(env['LUTE_DEMO_RUN']):04d}"
    for attempt in (1, 2):
        res = _run_demo(env)
        text = res.stdout + res.stderr
        assert res.returncode == 0, f"attempt {attempt}:\n{text[-6000:]}"
        for task in ("FrameSimulator", "PeakFinder", "FrameStatistician", "PeakSummarizer"):
            assert re.search(rf"^\[{task}\] .*COMPLETED", res.stdout, re.M), (task, attempt)
        assert "ended: success" in res.stdout
        # the summary table, then where the outputs are
        assert "┏" in res.stdout
        listed = re.findall(r"^  (/\S+\.(?:csv|png))$", res.stdout, re.M)
        assert str(out_dir / "peak_summary.png") in listed, res.stdout[-3000:]
        assert str(out_dir / "peaks.csv") in listed
        assert (out_dir / "peak_summary.png").stat().st_size > 0
        # the stack it started is stopped again
        assert "stopping the dev stack" in res.stdout
        assert read_records(state / "pids") == []
