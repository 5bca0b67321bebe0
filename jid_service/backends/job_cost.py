"""What one finished job cost, as a backend measures it.

Every measure is optional: a backend fills what its scheduler reports and
leaves the rest null (the ``firecrest`` backend knows no memory, the
``local`` backend no CPU allocation). CPU efficiency is computed as Slurm's
``seff`` does: CPU time used over elapsed time times the CPUs allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class JobCost(BaseModel):
    """A finished job's queue wait, run time, exit code, peak memory and CPU use."""

    # strict: a client sends documents back, and `false` is no efficiency
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    queue_wait_seconds: float | None = Field(
        default=None, ge=0, description="from submission to start")
    run_seconds: float | None = Field(default=None, ge=0, description="from start to end")
    exit_code: int | None = Field(default=None, description="as the job's `exit_code`")
    max_rss_bytes: int | None = Field(
        default=None, ge=0, description="peak resident memory (Slurm: MaxRSS over the steps)")
    cpu_seconds: float | None = Field(
        default=None, ge=0, description="user + system CPU time of the job")
    cpus: int | None = Field(default=None, ge=0, description="CPUs allocated to the job")
    cpu_efficiency: float | None = Field(
        default=None, ge=0, description="cpu_seconds / (run_seconds x cpus), as seff computes it")


def cpu_efficiency(cpu_seconds: float | None, run_seconds: float | None,
                   cpus: int | None) -> float | None:
    """``cpu_seconds / (run_seconds x cpus)``; None when a factor is unknown or zero."""
    if cpu_seconds is None or not run_seconds or not cpus:
        return None
    return round(cpu_seconds / (run_seconds * cpus), 4)


def time_between(first: float | None, then: float | None) -> float | None:
    """Seconds from ``first`` to ``then`` (never negative: clocks of two hosts), or None."""
    if first is None or then is None:
        return None
    return max(0.0, then - first)


@dataclass(frozen=True)
class CostReading:
    """A backend's reading of one job's cost.

    ``settled``: the scheduler's accounting of the job is complete. An
    unsettled reading (Slurm fills some fields a moment after a job ends) is
    asked for again at later ticks, and kept as it is once that takes too long.
    """

    cost: JobCost
    settled: bool = True
