"""submit_slurm.sh on the real Slurm: Tester, the demo's first Task, failures, cancel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lute.io.db import ResultsDB
from tests.integration.batch.conftest import log_of, submit, wait_for_job, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUTE_", "SLURM_"))}
    env.pop("EXPERIMENT", None)
    env.pop("RUN_NUM", None)
    env["LUTE_LOG_DIR"] = str(tmp_path / "slurm logs")
    return env


def test_tester_completes_with_log_and_record(slurm, tmp_path, job_env):
    folder = tmp_path / "config dir with spaces"
    config = write_config(folder, {"Test": {"str_var": "from {{ experiment }}"}})
    job = submit(
        [
            "-c",
            str(config),
            "-t",
            "Tester",
            "-e",
            "xpp 01",
            "-r",
            "7_2026",
            "--partition=debug",
            "--time=5",
        ],
        cwd=tmp_path,
        env=job_env,
    )
    assert wait_for_job(job) == ("COMPLETED", "0:0")
    log = log_of(Path(job_env["LUTE_LOG_DIR"]), job)
    assert re.fullmatch(rf"Tester_xpp 01_r0007_\d{{4}}-\d\d-\d\dT\d{{6}}_{job}\.out", log.name)
    text = log.read_text()
    assert "Tester: INFO Test: float_var=0.01 str_var=from xpp 01" in text
    assert "Tester: Task Test COMPLETED" in text
    (rec,) = ResultsDB.for_work_dir(folder / "work").runs()
    assert (rec.status, rec.slurm_job_id, rec.experiment, rec.run) == (
        "COMPLETED",
        job,
        "xpp 01",
        "7",
    )


def test_kerberos_cache_reaches_the_job(slurm, tmp_path, job_env):
    # the job's config reads $KRB5CCNAME: it is what -K handed to the batch job
    cache = f"FILE:{tmp_path}/krb5cc_lute test"
    config = write_config(tmp_path / "cfg", {"Test": {"str_var": "cache {{ $KRB5CCNAME }}"}})
    env = {k: v for k, v in job_env.items() if k != "KRB5CCNAME"}
    job = submit(["-c", str(config), "-t", "Tester", "-e", "xpp1", "-r", "2", "-K", cache],
                 cwd=tmp_path, env=env)
    assert wait_for_job(job) == ("COMPLETED", "0:0")
    text = log_of(Path(env["LUTE_LOG_DIR"]), job).read_text()
    assert f"str_var=cache {cache}" in text


def test_frame_simulator_completes(slurm, tmp_path, job_env):
    config = write_config(
        tmp_path / "cfg",
        {"SimulateFrames": {"n_frames": 3, "height": 64, "width": 64, "peaks_per_frame": 5}},
    )
    env = dict(job_env, LUTE_PYTHON=sys.executable, EXPERIMENT="mfx42", RUN_NUM="12")
    job = submit(["-c", str(config), "-t", "FrameSimulator", "--debug"], cwd=tmp_path, env=env)
    assert wait_for_job(job)[0] == "COMPLETED"
    text = log_of(Path(env["LUTE_LOG_DIR"]), job).read_text()
    assert "FrameSimulator: INFO SimulateFrames: simulated 3 frames of 64x64" in text
    assert "FrameSimulator: parameters of SimulateFrames" in text  # --debug reached lute-run-task
    (rec,) = ResultsDB.for_work_dir(tmp_path / "cfg" / "work").runs()
    assert rec.status == "COMPLETED" and rec.slurm_job_id == job
    with np.load(rec.outputs["frames_file"]) as data:
        assert data["frames"].shape == (3, 64, 64)


def test_failing_task_ends_failed_with_its_error_in_the_log(slurm, tmp_path, job_env):
    config = write_config(tmp_path / "cfg", {"Test": {}})
    job = submit(
        ["-c", str(config), "-t", "FailingTester", "-e", "cxi1", "-r", "3"],
        cwd=tmp_path,
        env=job_env,
    )
    assert wait_for_job(job) == ("FAILED", "1:0")
    text = log_of(Path(job_env["LUTE_LOG_DIR"]), job).read_text()
    assert "FailingTester: RuntimeError: Test was asked to fail (throw_error is true)" in text
    assert "FailingTester: Task Test FAILED" in text
    (rec,) = ResultsDB.for_work_dir(tmp_path / "cfg" / "work").runs()
    assert rec.status == "FAILED" and "throw_error" in rec.error


def test_config_error_fails_the_job_and_records_nothing(slurm, tmp_path, job_env):
    config = write_config(tmp_path / "cfg", {"Sleep": {"seconds": "later"}})
    job = submit(
        ["-c", str(config), "-t", "Sleeper", "-e", "cxi1", "-r", "3"], cwd=tmp_path, env=job_env
    )
    assert wait_for_job(job) == ("FAILED", "2:0")
    text = log_of(Path(job_env["LUTE_LOG_DIR"]), job).read_text()
    assert "Task Sleep: key seconds" in text
    assert ResultsDB.for_work_dir(tmp_path / "cfg" / "work").runs() == []


def test_scancel_is_recorded_as_cancelled(slurm, tmp_path, job_env):
    config = write_config(tmp_path / "cfg", {"Sleep": {"seconds": 120, "print_interval": 0.2}})
    job = submit(
        ["-c", str(config), "-t", "Sleeper", "-e", "cxi1", "-r", "4"], cwd=tmp_path, env=job_env
    )
    log_dir = Path(job_env["LUTE_LOG_DIR"])
    # the job may wait for a free CPU while other tests use the cluster
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        logs = list(log_dir.glob(f"*_{job}.out"))
        if logs and "tick 1" in logs[0].read_text():
            break
        time.sleep(0.2)
    else:
        pytest.fail("the Sleeper job never started ticking")
    subprocess.run(["scancel", job], check=True, timeout=30)
    assert wait_for_job(job)[0] == "CANCELLED"
    db = ResultsDB.for_work_dir(tmp_path / "cfg" / "work")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and db.runs()[0].status == "RUNNING":
        time.sleep(0.2)
    (rec,) = db.runs()
    assert rec.status == "CANCELLED"
    assert "SIGTERM" in rec.error


def test_demo_pipeline_with_slurm_dependencies(slurm, tmp_path, job_env):
    config = write_config(
        tmp_path / "cfg",
        {
            "SimulateFrames": {"n_frames": 4, "height": 64, "width": 64, "peaks_per_frame": 6},
            "FindPeaks": {},
            "ComputeFrameStatistics": {},
            "SummarizePeaks": {},
        },
    )
    common = ["-c", str(config), "-e", "demo", "-r", "9"]
    sim = submit([*common, "-t", "FrameSimulator"], tmp_path, job_env)
    after_sim = f"--dependency=afterok:{sim}"
    finder = submit([*common, "-t", "PeakFinder", after_sim], tmp_path, job_env)
    stats = submit([*common, "-t", "FrameStatistician", after_sim], tmp_path, job_env)
    summary = submit(
        [*common, "-t", "PeakSummarizer", f"--dependency=afterok:{finder}:{stats}"],
        tmp_path,
        job_env,
    )
    for job in (sim, finder, stats, summary):
        assert wait_for_job(job)[0] == "COMPLETED", job
    runs = {r.managed_task: r for r in ResultsDB.for_work_dir(tmp_path / "cfg" / "work").runs()}
    assert {name: r.status for name, r in runs.items()} == {
        "FrameSimulator": "COMPLETED",
        "PeakFinder": "COMPLETED",
        "FrameStatistician": "COMPLETED",
        "PeakSummarizer": "COMPLETED",
    }
    assert runs["PeakFinder"].params["in_file"] == runs["FrameSimulator"].outputs["frames_file"]
    assert (
        runs["PeakSummarizer"].params["stats_file"]
        == runs["FrameStatistician"].outputs["stats_file"]
    )
    assert Path(runs["PeakSummarizer"].outputs["plot_file"]).read_bytes()[:4] == b"\x89PNG"
