"""Parameter models of the demo pipeline: simulated detector frames to a peak summary.

``SimulateFrames >> [FindPeaks, ComputeFrameStatistics]``, ``FindPeaks >>
SummarizePeaks``. Each input defaults to the upstream Task's recorded output
for the same experiment and run.
"""

from __future__ import annotations

import math

from pydantic import Field, ValidationInfo, field_validator, model_validator

from lute.io.models.base import TaskParameters, input_path, output_path, recorded_output


class SimulateFramesParameters(TaskParameters):
    """Synthetic detector frames: Gaussian Bragg-like peaks on a noisy background."""

    n_frames: int = Field(20, ge=1, le=10_000)
    height: int = Field(256, ge=16, le=8192)
    width: int = Field(256, ge=16, le=8192)
    peaks_per_frame: int = Field(25, ge=0, le=10_000)
    peak_sigma: float = Field(1.3, gt=0, description="peak width in pixels")
    peak_intensity: tuple[float, float] = Field(
        (300.0, 3000.0), description="min, max height (ADU)"
    )
    background: float = Field(20.0, ge=0, description="mean background (ADU)")
    noise_sigma: float = Field(4.0, ge=0, description="Gaussian read noise (ADU)")
    saturation: float = Field(16383.0, gt=0, description="detector full scale (ADU)")
    seed: int | None = Field(None, description="RNG seed; default derived from the run")
    out_file: str | None = None

    @field_validator("out_file", mode="after")
    @classmethod
    def _default_out_file(cls, value: str | None, info: ValidationInfo) -> str:
        return output_path(info, value, "frames.npz")

    @model_validator(mode="after")
    def _check_intensity(self) -> SimulateFramesParameters:
        low, high = self.peak_intensity
        if not 0 < low <= high:
            raise ValueError("peak_intensity must be (min, max) with 0 < min <= max")
        # a peak is drawn on a +-4 sigma patch that must fit inside the frame
        need = 2 * math.ceil(4 * self.peak_sigma) + 8
        if self.peaks_per_frame and min(self.height, self.width) < need:
            raise ValueError(
                f"frames of {self.height}x{self.width} are too small for peak_sigma "
                f"{self.peak_sigma}: both sides must be at least {need} pixels"
            )
        return self


class FindPeaksParameters(TaskParameters):
    """Local-maximum peak finding above a noise-scaled threshold."""

    in_file: str | None = None
    threshold_sigma: float = Field(8.0, gt=0, description="threshold in robust noise sigmas")
    window: int = Field(2, ge=1, le=20, description="half size of the local-maximum window")
    min_snr: float = Field(5.0, ge=0)
    out_file: str | None = None
    match_radius: float = Field(2.0, gt=0, description="pixels, to score against the truth")

    @field_validator("in_file", mode="after")
    @classmethod
    def _default_in_file(cls, value: str | None, info: ValidationInfo) -> str:
        if value is not None:
            return input_path(info, value) or value
        return recorded_output(info, "SimulateFrames", "frames_file") or ""

    @field_validator("out_file", mode="after")
    @classmethod
    def _default_out_file(cls, value: str | None, info: ValidationInfo) -> str:
        return output_path(info, value, "peaks.csv")


class ComputeFrameStatisticsParameters(TaskParameters):
    """Per-frame statistics and a radial profile (a parallel branch to FindPeaks)."""

    in_file: str | None = None
    radial_bins: int = Field(64, ge=4, le=4096)
    out_file: str | None = None
    profile_file: str | None = None

    @field_validator("in_file", mode="after")
    @classmethod
    def _default_in_file(cls, value: str | None, info: ValidationInfo) -> str:
        if value is not None:
            return input_path(info, value) or value
        return recorded_output(info, "SimulateFrames", "frames_file") or ""

    @field_validator("out_file", mode="after")
    @classmethod
    def _default_out_file(cls, value: str | None, info: ValidationInfo) -> str:
        return output_path(info, value, "frame_stats.csv")

    @field_validator("profile_file", mode="after")
    @classmethod
    def _default_profile_file(cls, value: str | None, info: ValidationInfo) -> str:
        return output_path(info, value, "radial_profile.csv")


class SummarizePeaksParameters(TaskParameters):
    """A per-frame table and the quick-look figure of the peaks (PNG)."""

    peaks_file: str | None = None
    stats_file: str | None = Field(
        None, description="frame statistics; defaults to ComputeFrameStatistics' output if recorded"
    )
    frames_file: str | None = Field(
        None, description="frames and their simulated truth, for the frame shown and the "
        "scores; defaults to SimulateFrames' output if recorded"
    )
    profile_file: str | None = Field(
        None, description="radial profile; defaults to ComputeFrameStatistics' output if recorded"
    )
    match_radius: float = Field(2.0, gt=0, description="pixels, to score against the truth")
    shown_frame: int | None = Field(
        None, ge=0, description="the frame drawn with its peaks; default: most mismatches")
    table_file: str | None = None
    plot_file: str | None = None

    @field_validator("frames_file", mode="after")
    @classmethod
    def _default_frames_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            return input_path(info, value)
        return recorded_output(info, "SimulateFrames", "frames_file", required=False)

    @field_validator("profile_file", mode="after")
    @classmethod
    def _default_profile_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            return input_path(info, value)
        return recorded_output(info, "ComputeFrameStatistics", "profile_file", required=False)

    @field_validator("peaks_file", mode="after")
    @classmethod
    def _default_peaks_file(cls, value: str | None, info: ValidationInfo) -> str:
        if value is not None:
            return input_path(info, value) or value
        return recorded_output(info, "FindPeaks", "peaks_file") or ""

    @field_validator("stats_file", mode="after")
    @classmethod
    def _default_stats_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            return input_path(info, value)
        return recorded_output(info, "ComputeFrameStatistics", "stats_file", required=False)

    @field_validator("table_file", mode="after")
    @classmethod
    def _default_table_file(cls, value: str | None, info: ValidationInfo) -> str:
        return output_path(info, value, "peak_summary.csv")

    @field_validator("plot_file", mode="after")
    @classmethod
    def _default_plot_file(cls, value: str | None, info: ValidationInfo) -> str:
        return output_path(info, value, "peak_summary.png")
