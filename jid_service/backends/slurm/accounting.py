"""What finished Slurm jobs cost, from one ``sacct`` (slurmdbd accounting).

``sacct -n -P -j IDS --format=`` :data:`SACCT_COST_FORMAT`, run with
``SLURM_TIME_FORMAT=%s`` so that times are Unix seconds, prints one line for
the job's allocation and one per step (``123.batch``, ``123.extern``,
``123.0``). Measured on Slurm 22.05 with ``jobacct_gather/linux``:

- MaxRSS is only on the step lines, with a binary suffix (``98524K``);
  it stays empty for a step too short to be sampled (shorter than the
  sampling interval, ``JobAcctGatherFrequency`` or ``sbatch --acctg-freq``);
- TotalCPU (``MM:SS.mmm`` or ``[D-]HH:MM:SS``) on the allocation line is the
  sum over its steps; Elapsed is ``[D-]HH:MM:SS``;
- a step the controller has not yet reported ended to slurmdbd still reads
  RUNNING for a moment after the job itself ended.

The peak memory of a job is the largest MaxRSS of its steps, and its CPU
efficiency TotalCPU / (Elapsed x AllocCPUS), as ``seff`` computes them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from jid_service.backends.job_cost import CostReading, JobCost, cpu_efficiency, time_between
from jid_service.backends.states import map_state, parse_exit_code

SACCT_COST_FORMAT = "JobIDRaw,State,Submit,Start,End,Elapsed,ExitCode,MaxRSS,TotalCPU,AllocCPUS"
SACCT_COST_ENV = {"SLURM_TIME_FORMAT": "%s"}
"""The environment of the cost query: times as Unix seconds (no time zone to guess)."""

_COLUMNS = SACCT_COST_FORMAT.split(",")
_FIELDS = len(_COLUMNS)
_STATE, _END, _MAX_RSS, _TOTAL_CPU = (_COLUMNS.index(name)
                                      for name in ("State", "End", "MaxRSS", "TotalCPU"))
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([KMGTPE]?)", re.IGNORECASE)
_DURATION = re.compile(r"(?:([0-9]+)-)?(?:([0-9]+):)?([0-9]+):([0-9]+(?:\.[0-9]+)?)")
_UNITS = "KMGTPE"


def parse_size(text: str) -> int | None:
    """Bytes of a sacct size (``98524K``, ``1.50G``, ``0``; K = 1024); None when empty."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    number, unit = float(match.group(1)), match.group(2).upper()
    scale = 1024 ** (_UNITS.index(unit) + 1) if unit else 1
    return int(number * scale)


def parse_duration(text: str) -> float | None:
    """Seconds of a sacct duration (``[D-][HH:]MM:SS[.mmm]``); None when empty or invalid."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = match.groups()
    return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60
            + float(seconds))


def parse_time(text: str) -> float | None:
    """A sacct time: Unix seconds (``SLURM_TIME_FORMAT=%s``) or ISO local time; None if unset.

    Slurm prints ``Unknown`` (or ``None``) for a time that has not come.
    """
    value = text.strip()
    if value.isdigit():
        return float(value) if int(value) > 0 else None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _count(text: str) -> int | None:
    value = text.strip()
    return int(value) if value.isdigit() else None


@dataclass
class _Job:
    fields: list[str] | None = None
    steps: list[list[str]] = field(default_factory=list)


def _finished(state: str) -> bool:
    return map_state(state).status.finished


def _reading(job: list[str], steps: list[list[str]]) -> CostReading:
    _, state, submit, start, end, elapsed, exit_code, _, total_cpu, cpus = job
    started, ended = parse_time(start), parse_time(end)
    run = parse_duration(elapsed)
    if run is None:
        run = time_between(started, ended)
    rss = [size for line in [job, *steps] if (size := parse_size(line[_MAX_RSS])) is not None]
    cpu = parse_duration(total_cpu)
    if cpu is None:
        step_cpu = [c for line in steps if (c := parse_duration(line[_TOTAL_CPU])) is not None]
        cpu = sum(step_cpu) if step_cpu else None
    allocated = _count(cpus)
    parsed_exit = parse_exit_code(exit_code)
    cost = JobCost(
        queue_wait_seconds=time_between(parse_time(submit), started),
        run_seconds=run,
        exit_code=parsed_exit.code if parsed_exit is not None else None,
        max_rss_bytes=max(rss) if rss else None,
        cpu_seconds=cpu,
        cpus=allocated,
        cpu_efficiency=cpu_efficiency(cpu, run, allocated),
    )
    # settled once slurmdbd has the job's end and every step's: a job that
    # never started has no steps to wait for
    settled = _finished(state) and (started is None or (
        ended is not None and bool(steps)
        and all(_finished(line[_STATE]) and parse_time(line[_END]) is not None
                for line in steps)))
    return CostReading(cost=cost, settled=settled)


def parse_costs(output: str, wanted: Sequence[str] | None = None) -> dict[str, CostReading]:
    """Parse ``sacct -n -P --format=`` :data:`SACCT_COST_FORMAT` output (steps included).

    Jobs without their allocation line (and those not ``wanted``) are left out.
    """
    keep = set(wanted) if wanted is not None else None
    jobs: dict[str, _Job] = {}
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) != _FIELDS:
            continue
        job_id, _, step = fields[0].strip().partition(".")
        if keep is not None and job_id not in keep:
            continue
        entry = jobs.setdefault(job_id, _Job())
        if step:
            entry.steps.append(fields)
        else:
            entry.fields = fields  # a requeued job listed twice keeps its last line
    return {job_id: _reading(job.fields, job.steps)
            for job_id, job in jobs.items() if job.fields is not None}
