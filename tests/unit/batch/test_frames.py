"""The demo pipeline: peak finding on known peaks, and the whole chain through the Executor."""

from __future__ import annotations

import io

import numpy as np

from lute.io.db import ResultsDB
from lute.managed_tasks import get_managed_task
from lute.tasks.frames import find_peaks_in_frame
from lute.tasks.peak_matching import match_peaks


def test_find_peaks_finds_known_peaks():
    rng = np.random.default_rng(0)
    frame = rng.normal(10, 2, (64, 64)).astype(np.float32)
    yy, xx = np.indices(frame.shape)
    true = [(10.3, 12.7), (40.0, 50.2), (55.5, 8.4)]
    for r, c in true:
        frame += 500 * np.exp(-0.5 * (((yy - r) / 1.2) ** 2 + ((xx - c) / 1.2) ** 2))
    peaks = find_peaks_in_frame(frame, threshold_sigma=8, window=2)
    assert len(peaks) == 3
    found = np.array([(p[2], p[3]) for p in peaks])
    assert match_peaks(found, np.array(true), radius=0.5) == 3
    assert all(p[6] > 50 for p in peaks)  # SNR


def test_pure_noise_has_no_peaks():
    frame = np.random.default_rng(1).normal(10, 2, (64, 64))
    assert find_peaks_in_frame(frame, threshold_sigma=8, window=2) == []


def _run(config, name):
    return get_managed_task(name).execute(config, managed_name=name, out=io.StringIO())


def test_simulation_is_reproducible_per_run(make_config, tmp_path):
    config = make_config({"SimulateFrames": {"n_frames": 2, "height": 32, "width": 32}})
    first = _run(config, "FrameSimulator")
    second = _run(config, "FrameSimulator")
    db = ResultsDB.for_work_dir(tmp_path / "work")
    a, b = db.get(first.run_id), db.get(second.run_id)
    assert a.summary["seed"] == b.summary["seed"]


def test_peak_finder_without_upstream_is_a_config_error(make_config, tmp_path):
    outcome = _run(make_config({}), "PeakFinder")
    assert outcome.exit_code == 2
    assert "SimulateFrames" in outcome.error
    assert ResultsDB.for_work_dir(tmp_path / "work").runs() == []


def test_frames_without_peaks_flow_through(make_config, tmp_path):
    config = make_config(
        {
            "SimulateFrames": {"n_frames": 2, "height": 16, "width": 16, "peaks_per_frame": 0},
            "FindPeaks": {},
            "SummarizePeaks": {},
        }
    )
    for name in ("FrameSimulator", "PeakFinder", "PeakSummarizer"):
        assert _run(config, name).status == "COMPLETED", name
    finder = ResultsDB.for_work_dir(tmp_path / "work").runs(task="FindPeaks")[0]
    assert finder.summary["n_peaks"] == 0 and finder.summary["recall"] is None


def test_frames_too_small_for_the_peaks_is_a_config_error(make_config):
    config = make_config({"SimulateFrames": {"height": 16, "width": 64, "peak_sigma": 2}})
    outcome = _run(config, "FrameSimulator")
    assert outcome.exit_code == 2 and "too small for peak_sigma" in outcome.error
