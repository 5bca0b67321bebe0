"""The demo pipeline's whole chain, and its quick-look figure read back through matplotlib's
objects (not its pixels)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from lute.io.db import ResultsDB
from lute.managed_tasks import get_managed_task
from lute.tasks import quicklook

UNIT = re.compile(r"\((pixels|ADU|count|index)\)$")


def _labelled_axes(fig):
    return [ax for ax in fig.axes if ax.axison]


def _texts(fig) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_the_chain_and_its_figure_of_a_frame_its_peaks_the_profile_and_the_scores(
    make_config, tmp_path,
):
    config = make_config({
        "SimulateFrames": {"n_frames": 5, "height": 96, "width": 80, "peaks_per_frame": 8},
        "FindPeaks": {},
        "ComputeFrameStatistics": {"radial_bins": 16},
        "SummarizePeaks": {},
    })
    for name in ("FrameSimulator", "PeakFinder", "FrameStatistician", "PeakSummarizer"):
        outcome = get_managed_task(name).execute(config, managed_name=name, out=io.StringIO())
        assert outcome.status == "COMPLETED", (name, outcome.error)
    sim, finder, stats, summary = ResultsDB.for_work_dir(tmp_path / "work").runs()
    with np.load(sim.outputs["frames_file"]) as data:
        assert data["frames"].shape == (5, 96, 80)
        assert data["truth"].shape == (40, 4)
    assert finder.params["in_file"] == stats.params["in_file"] == sim.outputs["frames_file"]
    assert finder.summary["recall"] > 0.8 and finder.summary["precision"] > 0.8
    with open(finder.outputs["peaks_file"]) as fh:
        assert len(list(csv.DictReader(fh))) == finder.summary["n_peaks"]
    assert summary.params["peaks_file"] == finder.outputs["peaks_file"]
    assert summary.params["stats_file"] == stats.outputs["stats_file"]
    assert summary.params["profile_file"] == stats.outputs["profile_file"]
    assert summary.params["frames_file"] == sim.outputs["frames_file"]
    assert summary.summary["used_statistics"] is True
    with open(summary.outputs["table_file"]) as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 5
    assert sum(int(r["n_peaks"]) for r in table) == finder.summary["n_peaks"]
    assert Path(summary.outputs["plot_file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same scores as the peak finder's, over the same truth
    assert (summary.summary["recall"], summary.summary["precision"]) == (
        finder.summary["recall"], finder.summary["precision"])

    params = summary.params
    look = quicklook.load(
        "xpptest01 run 7", quicklook.read_csv(Path(params["peaks_file"])), list(range(5)),
        frames_file=params["frames_file"], profile_file=params["profile_file"],
        stats=quicklook.read_csv(Path(params["stats_file"])),
        match_radius=params["match_radius"], shown_frame=params["shown_frame"])
    fig = quicklook.figure(look)
    fig.canvas.draw()

    checked = 0
    for ax in _labelled_axes(fig):  # every axis with tick labels says its unit (colour bar too)
        for axis in (ax.xaxis, ax.yaxis):
            if any(t.get_text() for t in axis.get_ticklabels()):
                assert UNIT.search(axis.get_label_text()), (ax.get_title(), axis)
                checked += 1
    assert checked == 11  # five panels with two axes each, and the colour bar
    frame_ax = next(ax for ax in fig.axes if ax.get_title().startswith("Frame "))
    assert frame_ax.get_title() == f"Frame {summary.summary['shown_frame']}"
    assert (frame_ax.get_xlabel(), frame_ax.get_ylabel()) == ("column (pixels)", "row (pixels)")
    shown = summary.summary["shown_frame"]
    n_found = len(look.peaks_rc[shown])
    n_true = len(look.true_rc[shown])
    legend = [t.get_text() for t in frame_ax.get_legend().get_texts()]
    assert legend == [f"found peaks ({n_found})", f"true peaks (simulated) ({n_true})"]
    found_marks, true_marks = frame_ax.collections
    assert len(found_marks.get_offsets()) == n_found and len(true_marks.get_offsets()) == n_true
    assert not np.array_equal(found_marks.get_paths()[0].vertices,
                              true_marks.get_paths()[0].vertices)  # distinct markers
    colorbar = next(ax for ax in fig.axes if ax.get_ylabel() == "intensity (ADU)"
                    and not ax.get_title())
    assert colorbar is not frame_ax

    profile_ax = next(ax for ax in fig.axes if ax.get_xlabel() == "radius (pixels)")
    assert profile_ax.get_ylabel() == "mean intensity (ADU)"
    assert len(profile_ax.lines[0].get_xdata()) == 16

    frame_axes = [ax for ax in fig.axes if ax.get_xlabel() == "frame (index)"]
    assert len(frame_axes) == 2  # peaks per frame, frame statistics
    for ax in frame_axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    per_frame = next(ax for ax in frame_axes if ax.get_title() == "Peaks per frame")
    assert sorted(t.get_text() for t in per_frame.get_legend().get_texts()) == [
        "found peaks", "true peaks (simulated)"]

    scores = look.scores
    text = _texts(fig)
    assert f"recall {finder.summary['recall']:.3f} ({scores.matched} of 40 true peaks found)" \
        in text
    assert (f"precision {finder.summary['precision']:.3f} ({scores.matched} of "
            f"{finder.summary['n_peaks']} found peaks true)") in text


def test_without_truth_profile_or_statistics_the_panels_say_so() -> None:
    peaks = {"frame": ["0", "1"], "row_c": ["10.5", "20.0"], "col_c": ["5.0", "7.5"],
             "intensity": ["900", "1200"]}
    look = quicklook.load("e run 1", peaks, [0, 1], frames_file=None, profile_file=None,
                          stats=None, match_radius=2.0, shown_frame=None)
    fig = quicklook.figure(look)
    fig.canvas.draw()
    text = _texts(fig)
    assert "no simulated truth recorded: recall and precision unknown" in text
    assert "no radial profile recorded" in text and "no frame statistics recorded" in text
    assert "no frames recorded" in text
    per_frame = next(ax for ax in fig.axes if ax.get_title() == "Peaks per frame")
    assert [p.get_height() for p in per_frame.patches] == [1, 1]
