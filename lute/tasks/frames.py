"""The demo pipeline on synthetic detector data.

``SimulateFrames`` draws frames with Gaussian, Bragg-like peaks on a noisy
background with a diffuse ring; ``FindPeaks`` finds local maxima above a
robust noise threshold and scores them against the simulated truth;
``ComputeFrameStatistics`` computes per-frame statistics and a radial
profile; ``SummarizePeaks`` writes a per-frame table and the quick-look
figure (``quicklook.py``): a frame with its found and true peaks, the radial
profile, and recall and precision against the simulated truth.
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Any

from lute.tasks.base import Task
from lute.tasks.peak_matching import match_peaks

PEAK_COLUMNS = ("frame", "row", "col", "row_c", "col_c", "height", "intensity", "snr")
STATS_COLUMNS = ("frame", "mean", "std", "median", "min", "max", "saturated")


def _seed(experiment: str, run: str) -> int:
    return zlib.crc32(f"{experiment}:{run}".encode())


class SimulateFrames(Task):
    """Synthetic frames saved as ``.npz`` (``frames``, ``truth``, ``saturation``)."""

    def run(self) -> None:
        """Draw the frames and save them with the true peak positions."""
        import numpy as np

        p = self.params
        seed = p.seed if p.seed is not None else _seed(self.context.experiment, self.context.run)
        rng = np.random.default_rng(seed)
        n, h, w = p.n_frames, p.height, p.width
        frames = rng.normal(p.background, p.noise_sigma, size=(n, h, w)).astype(np.float32)
        # a diffuse ring (think solvent scattering) so the radial profile has structure
        yy, xx = np.indices((h, w))
        radius = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
        ring_r, ring_w = 0.3 * min(h, w), 0.04 * min(h, w)
        frames += (3.0 * p.noise_sigma * np.exp(-0.5 * ((radius - ring_r) / ring_w) ** 2)).astype(
            np.float32
        )
        half = max(2, int(np.ceil(4 * p.peak_sigma)))
        offsets = np.arange(-half, half + 1)
        truth: list[tuple[int, float, float, float]] = []
        low, high = p.peak_intensity
        for i in range(n if p.peaks_per_frame else 0):
            rows = rng.uniform(half + 2, h - half - 3, p.peaks_per_frame)
            cols = rng.uniform(half + 2, w - half - 3, p.peaks_per_frame)
            heights = rng.uniform(low, high, p.peaks_per_frame)
            for r, c, a in zip(rows, cols, heights, strict=True):
                r0, c0 = round(r), round(c)
                gy = np.exp(-0.5 * ((r0 + offsets - r) / p.peak_sigma) ** 2)
                gx = np.exp(-0.5 * ((c0 + offsets - c) / p.peak_sigma) ** 2)
                frames[i, r0 - half : r0 + half + 1, c0 - half : c0 + half + 1] += (
                    a * np.outer(gy, gx)
                ).astype(np.float32)
                truth.append((i, float(r), float(c), float(a)))
        np.clip(frames, 0, p.saturation, out=frames)
        out = Path(p.out_file)
        out.parent.mkdir(parents=True, exist_ok=True)
        truth_arr = np.array(truth, dtype=np.float64).reshape(-1, 4)
        with open(out, "wb") as fh:
            np.savez(fh, frames=frames, truth=truth_arr, saturation=np.float32(p.saturation))
        self.log.info("simulated %d frames of %dx%d with %d peaks -> %s", n, h, w, len(truth), out)
        self.result.outputs = {"frames_file": str(out)}
        self.result.summary = {
            "frames_file": str(out),
            "n_frames": n,
            "shape": [h, w],
            "n_true_peaks": len(truth),
            "seed": int(seed),
            "bytes": out.stat().st_size,
        }


def find_peaks_in_frame(frame: Any, threshold_sigma: float, window: int) -> list[tuple]:
    """Local maxima above ``median + threshold_sigma * robust sigma`` in one frame.

    Returns ``(row, col, row_c, col_c, height, intensity, snr)`` per peak:
    integer position, 3x3 centroid, background-subtracted height, 3x3 sum
    above background, and height over the robust noise.
    """
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    bg = float(np.median(frame))
    noise = float(1.4826 * np.median(np.abs(frame - bg))) or 1.0
    padded = np.pad(frame, window, mode="constant", constant_values=-np.inf)
    local_max = sliding_window_view(padded, (2 * window + 1, 2 * window + 1)).max(axis=(-1, -2))
    candidates = (frame >= local_max) & (frame > bg + threshold_sigma * noise)
    # a 3x3 box needs one pixel of margin
    candidates[[0, -1], :] = False
    candidates[:, [0, -1]] = False
    peaks = []
    for r, c in zip(*np.nonzero(candidates), strict=True):
        box = frame[r - 1 : r + 2, c - 1 : c + 2] - bg
        weights = np.clip(box, 0, None)
        total = float(weights.sum()) or 1.0
        dy, dx = np.mgrid[-1:2, -1:2]
        row_c = r + float((weights * dy).sum()) / total
        col_c = c + float((weights * dx).sum()) / total
        height = float(frame[r, c] - bg)
        peaks.append((int(r), int(c), row_c, col_c, height, float(box.sum()), height / noise))
    return peaks


class FindPeaks(Task):
    """Peak finding on every frame, written as a CSV table."""

    def pre_run(self) -> None:
        """Check the input exists."""
        if not Path(self.params.in_file).is_file():
            raise FileNotFoundError(f"frames file {self.params.in_file} does not exist")

    def run(self) -> None:
        """Find, score and write the peaks."""
        import numpy as np

        p = self.params
        with np.load(p.in_file) as data:
            frames = data["frames"]
            truth = data["truth"] if "truth" in data else np.zeros((0, 4))
        rows: list[tuple] = []
        matched = 0
        for i, frame in enumerate(frames):
            peaks = [
                pk
                for pk in find_peaks_in_frame(frame, p.threshold_sigma, p.window)
                if pk[6] >= p.min_snr
            ]
            rows.extend((i, *pk) for pk in peaks)
            found = np.array([(pk[2], pk[3]) for pk in peaks]).reshape(-1, 2)
            matched += match_peaks(found, truth[truth[:, 0] == i][:, 1:3], p.match_radius)
            self.log.debug("frame %d: %d peaks", i, len(peaks))
        out = Path(p.out_file)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(PEAK_COLUMNS)
            for row in rows:
                writer.writerow([row[0], row[1], row[2], *(f"{v:.4f}" for v in row[3:])])
        n_true = len(truth)
        recall = matched / n_true if n_true else None
        precision = matched / len(rows) if rows else None
        self.log.info(
            "found %d peaks in %d frames (truth %d, recall %s, precision %s) -> %s",
            len(rows),
            len(frames),
            n_true,
            f"{recall:.3f}" if recall is not None else "n/a",
            f"{precision:.3f}" if precision is not None else "n/a",
            out,
        )
        self.result.outputs = {"peaks_file": str(out)}
        self.result.summary = {
            "peaks_file": str(out),
            "n_frames": len(frames),
            "n_peaks": len(rows),
            "n_true_peaks": int(n_true),
            "recall": recall,
            "precision": precision,
        }


class ComputeFrameStatistics(Task):
    """Per-frame statistics and the mean radial profile, as two CSV files."""

    def pre_run(self) -> None:
        """Check the input exists."""
        if not Path(self.params.in_file).is_file():
            raise FileNotFoundError(f"frames file {self.params.in_file} does not exist")

    def run(self) -> None:
        """Compute and write the statistics and the profile."""
        import numpy as np

        p = self.params
        with np.load(p.in_file) as data:
            frames = data["frames"]
            saturation = float(data["saturation"]) if "saturation" in data else np.inf
        n, h, w = frames.shape
        stats_path = Path(p.out_file)
        stats_path.parent.mkdir(parents=True, exist_ok=True)
        with open(stats_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(STATS_COLUMNS)
            for i, frame in enumerate(frames):
                writer.writerow(
                    [
                        i,
                        f"{frame.mean():.4f}",
                        f"{frame.std():.4f}",
                        f"{np.median(frame):.4f}",
                        f"{frame.min():.4f}",
                        f"{frame.max():.4f}",
                        int((frame >= saturation).sum()),
                    ]
                )
        yy, xx = np.indices((h, w))
        radius = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2).ravel()
        edges = np.linspace(0, radius.max() + 1e-9, p.radial_bins + 1)
        which = np.digitize(radius, edges) - 1
        mean_frame = frames.mean(axis=0).ravel()
        counts = np.bincount(which, minlength=p.radial_bins)
        sums = np.bincount(which, weights=mean_frame, minlength=p.radial_bins)
        profile = sums / np.maximum(counts, 1)
        profile_path = Path(p.profile_file)
        profile_path.parent.mkdir(parents=True, exist_ok=True)
        with open(profile_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(("r_min", "r_max", "pixels", "mean"))
            for k in range(p.radial_bins):
                writer.writerow(
                    [f"{edges[k]:.3f}", f"{edges[k + 1]:.3f}", int(counts[k]), f"{profile[k]:.4f}"]
                )
        ring_bin = int(np.argmax(profile[1:])) + 1
        self.log.info(
            "statistics of %d frames -> %s; radial profile peaks at r=%.1f px -> %s",
            n,
            stats_path,
            (edges[ring_bin] + edges[ring_bin + 1]) / 2,
            profile_path,
        )
        self.result.outputs = {"stats_file": str(stats_path), "profile_file": str(profile_path)}
        self.result.summary = {
            "n_frames": int(n),
            "mean": float(frames.mean()),
            "std": float(frames.std()),
            "saturated_pixels": int((frames >= saturation).sum()),
            "profile_max_radius_px": float((edges[ring_bin] + edges[ring_bin + 1]) / 2),
        }


class SummarizePeaks(Task):
    """A per-frame summary table (CSV) and a PNG plot of the peaks."""

    def pre_run(self) -> None:
        """Check the inputs exist."""
        if not Path(self.params.peaks_file).is_file():
            raise FileNotFoundError(f"peaks file {self.params.peaks_file} does not exist")
        stats = self.params.stats_file
        if stats is not None and not Path(stats).is_file():
            raise FileNotFoundError(f"statistics file {stats} does not exist")

    def run(self) -> None:
        """Aggregate per frame, write the table, draw the plot."""
        import numpy as np

        from lute.tasks import quicklook

        p = self.params
        peaks = quicklook.read_csv(Path(p.peaks_file))
        stats = quicklook.read_csv(Path(p.stats_file)) if p.stats_file else None
        frame_ids = set(int(f) for f in peaks.get("frame", []))
        if stats is not None:
            frame_ids |= set(int(f) for f in stats["frame"])
        frames = sorted(frame_ids)
        peak_frame = np.asarray(peaks.get("frame", []), dtype=int)
        intensity = np.asarray(peaks.get("intensity", []), dtype=float)
        snr = np.asarray(peaks.get("snr", []), dtype=float)
        table = []
        for f in frames:
            sel = peak_frame == f
            row: dict[str, Any] = {
                "frame": f,
                "n_peaks": int(sel.sum()),
                "mean_intensity": float(intensity[sel].mean()) if sel.any() else 0.0,
                "max_snr": float(snr[sel].max()) if sel.any() else 0.0,
            }
            if stats is not None:
                idx = [int(x) for x in stats["frame"]].index(f) if f in frame_ids else None
                row["frame_mean"] = float(stats["mean"][idx]) if idx is not None else None
                row["frame_std"] = float(stats["std"][idx]) if idx is not None else None
            table.append(row)
        table_path = Path(p.table_file)
        table_path.parent.mkdir(parents=True, exist_ok=True)
        with open(table_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(table[0]) if table else ["frame"])
            writer.writeheader()
            writer.writerows(table)
        plot_path = Path(p.plot_file)
        look = quicklook.load(
            f"{self.context.experiment} run {self.context.run}", peaks, frames,
            frames_file=p.frames_file, profile_file=p.profile_file, stats=stats,
            match_radius=p.match_radius, shown_frame=p.shown_frame)
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        quicklook.figure(look).savefig(plot_path, dpi=100)
        counts = [r["n_peaks"] for r in table]
        self.log.info(
            "summarised %d peaks over %d frames -> %s, %s",
            len(peak_frame),
            len(frames),
            table_path,
            plot_path,
        )
        self.result.outputs = {"table_file": str(table_path), "plot_file": str(plot_path)}
        self.result.summary = {
            "n_frames": len(frames),
            "n_peaks": len(peak_frame),
            "mean_peaks_per_frame": float(np.mean(counts)) if counts else 0.0,
            "used_statistics": stats is not None,
            "recall": look.scores.recall if look.scores else None,
            "precision": look.scores.precision if look.scores else None,
            "shown_frame": look.shown,
        }
