"""The demo pipeline's quick-look figure: is the peak finding right, and where does it fail?

Six panels: one frame with its found and true peaks (the frame with the most
mismatches unless one is asked for), found and true peaks per frame, the mean
radial profile, the peaks' integrated intensity, the frame statistics, and the
scores against the simulated truth (recall: true peaks found; precision: found
peaks that are true; a match is one-to-one within ``match_radius`` pixels).
Every axis says its unit; frame axes have integer ticks. The figure is built
on matplotlib's object API (no pyplot state), so it can be drawn and read back.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FOUND_LABEL = "found peaks"
TRUE_LABEL = "true peaks (simulated)"


@dataclass
class Scores:
    """Found peaks matched against the simulated truth, over all frames."""

    matched: int
    n_true: int
    n_found: int
    radius: float

    @property
    def recall(self) -> float | None:
        """Share of true peaks found (None without true peaks)."""
        return self.matched / self.n_true if self.n_true else None

    @property
    def precision(self) -> float | None:
        """Share of found peaks that are true (None without found peaks)."""
        return self.matched / self.n_found if self.n_found else None


@dataclass
class QuickLook:
    """What the figure shows, loaded from the pipeline's files."""

    title: str
    frames: list[int]
    found_per_frame: list[int]
    intensity: Any
    """Integrated intensity of every found peak (ADU)."""
    peaks_rc: dict[int, Any] = field(default_factory=dict)
    """Frame -> found peaks' centroids, (n, 2) rows and columns."""
    true_rc: dict[int, Any] | None = None
    """Frame -> true peak positions; None without the simulated truth."""
    image: Any = None
    shown: int | None = None
    profile: tuple[Any, Any] | None = None
    """(bin centre radius in pixels, mean intensity in ADU)."""
    stats: dict[str, list[float]] | None = None
    """``frame``, ``mean``, ``std`` columns of the frame statistics."""
    scores: Scores | None = None
    matched_per_frame: dict[int, int] = field(default_factory=dict)


def read_csv(path: Path) -> dict[str, list[str]]:
    """Columns of a CSV file with a header row."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns: dict[str, list[str]] = {name: [] for name in reader.fieldnames or []}
        for row in reader:
            for name in columns:
                columns[name].append(row[name])
    return columns


def load(title: str, peaks: dict[str, list[str]], frames: list[int], *,
         frames_file: str | None, profile_file: str | None,
         stats: dict[str, list[str]] | None, match_radius: float,
         shown_frame: int | None) -> QuickLook:
    """Gather the figure's data; scores when ``frames_file`` holds the simulated truth."""
    import numpy as np

    from lute.tasks.peak_matching import match_peaks

    peak_frame = np.asarray(peaks.get("frame", []), dtype=int)
    rc = np.column_stack([np.asarray(peaks.get("row_c", []), dtype=float),
                          np.asarray(peaks.get("col_c", []), dtype=float)]).reshape(-1, 2)
    look = QuickLook(
        title=title, frames=frames,
        found_per_frame=[int((peak_frame == f).sum()) for f in frames],
        intensity=np.asarray(peaks.get("intensity", []), dtype=float),
        peaks_rc={f: rc[peak_frame == f] for f in frames},
    )
    if stats is not None:
        look.stats = {k: [float(v) for v in stats[k]] for k in ("frame", "mean", "std")}
    if profile_file:
        profile = read_csv(Path(profile_file))
        centre = (np.asarray(profile["r_min"], float) + np.asarray(profile["r_max"], float)) / 2
        look.profile = (centre, np.asarray(profile["mean"], dtype=float))
    if not frames_file:
        return look
    with np.load(frames_file) as data:
        images = data["frames"]
        truth = data.get("truth")
    look.frames = sorted(set(frames) | set(range(len(images))))
    look.found_per_frame = [int((peak_frame == f).sum()) for f in look.frames]
    look.peaks_rc = {f: rc[peak_frame == f] for f in look.frames}
    if truth is not None:
        look.true_rc = {f: truth[truth[:, 0] == f][:, 1:3] for f in look.frames}
        look.matched_per_frame = {
            f: match_peaks(look.peaks_rc[f], look.true_rc[f], match_radius) for f in look.frames}
        look.scores = Scores(sum(look.matched_per_frame.values()), len(truth), len(peak_frame),
                             match_radius)
    look.shown = _shown(look, shown_frame, len(images))
    look.image = images[look.shown]
    return look


def _shown(look: QuickLook, asked: int | None, n_frames: int) -> int:
    if asked is not None:
        if not 0 <= asked < n_frames:
            raise ValueError(f"shown_frame {asked} is not a frame of the {n_frames} simulated")
        return asked
    if look.true_rc is None:
        return 0
    true_rc = look.true_rc
    mismatches = {f: (len(true_rc[f]) - m) + (len(look.peaks_rc[f]) - m)
                  for f, m in look.matched_per_frame.items()}
    # the frame that tells most about what goes wrong; the first of equals
    return max(range(n_frames), key=lambda f: (mismatches.get(f, 0), -f))


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _nothing(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def score_lines(look: QuickLook) -> list[str]:
    """The scores panel's lines."""
    scores = look.scores
    if scores is None:
        return ["no simulated truth recorded: recall and precision unknown"]
    recall = "n/a" if scores.recall is None else f"{scores.recall:.3f}"
    precision = "n/a" if scores.precision is None else f"{scores.precision:.3f}"
    return [
        f"recall {recall} ({scores.matched} of {scores.n_true} true peaks found)",
        f"precision {precision} ({scores.matched} of {scores.n_found} found peaks true)",
        f"match within {scores.radius:g} pixels, one to one",
    ]


def figure(look: QuickLook) -> Figure:
    """The quick-look figure of ``look``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 9), layout="constrained")
    axes = fig.subplots(2, 3)
    _frame_panel(fig, axes[0, 0], look)
    _per_frame_panel(axes[0, 1], look)
    _profile_panel(axes[0, 2], look)
    ax = axes[1, 0]
    if len(look.intensity):
        ax.hist(look.intensity, bins=40, color="tab:orange")
    ax.set(title="Integrated intensity of found peaks (3x3 box)",
           xlabel="integrated intensity (ADU)", ylabel="found peaks (count)")
    _stats_panel(axes[1, 1], look)
    ax = axes[1, 2]
    ax.set_axis_off()
    ax.set_title("Scores against the simulated truth")
    ax.text(0.02, 0.85, "\n".join(score_lines(look)), transform=ax.transAxes, va="top",
            fontsize=12, family="monospace")
    fig.suptitle(look.title)
    return fig


def _frame_panel(fig: Figure, ax: Any, look: QuickLook) -> None:
    if look.image is None or look.shown is None:
        _nothing(ax, "no frames recorded: no frame to show")
        return
    image = ax.imshow(look.image, cmap="gray_r", origin="upper", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="intensity (ADU)")
    found = look.peaks_rc.get(look.shown)
    if found is not None and len(found):
        ax.scatter(found[:, 1], found[:, 0], s=80, facecolors="none", edgecolors="tab:red",
                   linewidths=1.2, marker="o", label=f"{FOUND_LABEL} ({len(found)})")
    true = None if look.true_rc is None else look.true_rc.get(look.shown)
    if true is not None and len(true):
        ax.scatter(true[:, 1], true[:, 0], s=40, color="tab:cyan", marker="+", linewidths=1.2,
                   label=f"{TRUE_LABEL} ({len(true)})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)
    ax.set(title=f"Frame {look.shown}", xlabel="column (pixels)", ylabel="row (pixels)")


def _per_frame_panel(ax: Any, look: QuickLook) -> None:
    ax.bar(look.frames, look.found_per_frame, color="tab:blue", label=FOUND_LABEL)
    if look.true_rc is not None:
        ax.plot(look.frames, [len(look.true_rc[f]) for f in look.frames], "k_", markersize=14,
                markeredgewidth=2, linestyle="none", label=TRUE_LABEL)
    ax.legend(fontsize=8)
    _integer_ticks(ax)
    ax.set(title="Peaks per frame", xlabel="frame (index)", ylabel="peaks (count)")


def _profile_panel(ax: Any, look: QuickLook) -> None:
    if look.profile is None:
        _nothing(ax, "no radial profile recorded (ComputeFrameStatistics)")
        return
    radius, mean = look.profile
    ax.plot(radius, mean, marker=".", color="tab:green")
    ax.set(title="Mean radial profile (about the frame centre)", xlabel="radius (pixels)",
           ylabel="mean intensity (ADU)")


def _stats_panel(ax: Any, look: QuickLook) -> None:
    if look.stats is None:
        _nothing(ax, "no frame statistics recorded (ComputeFrameStatistics)")
        return
    frames = [int(f) for f in look.stats["frame"]]
    ax.plot(frames, look.stats["mean"], marker="o", label="mean")
    ax.plot(frames, look.stats["std"], marker="s", label="standard deviation")
    ax.legend(fontsize=8)
    _integer_ticks(ax)
    ax.set(title="Frame statistics", xlabel="frame (index)", ylabel="intensity (ADU)")
