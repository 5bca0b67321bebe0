"""Parsers of what Slurm's clients print: squeue, sacct, scontrol and sbatch.

Measured on Slurm 22.05: ``squeue -O exit_code`` prints the raw wait status
(768 = exit 3, 15 = signal 15); ``sacct`` prints ``RC:SIGNAL``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from jid_service.backends.base import BackendJobState
from jid_service.backends.states import ExitCode, map_state, parse_exit_code

SQUEUE_FORMAT = "JobID:|,State:|,exit_code:|,Comment:|,Reason:"
"""squeue ``-O`` fields; Reason last, so a stray ``|`` there cannot shift a column."""

SACCT_FORMAT = "JobIDRaw,State,ExitCode"

JOB_ID = re.compile(r"\d+(?:_\d+)?")
"""A Slurm job id (``123``, or ``123_4`` for an array task)."""

_STDOUT_FIELD = re.compile(r"(?:^|\s)StdOut=(\S*)")


def wait_status_exit_code(raw: str) -> ExitCode | None:
    """squeue's ``exit_code`` (a raw wait status: 768 -> (3, 0), 15 -> (0, 15))."""
    text = raw.strip()
    if not text.isdigit():
        return None
    value = int(text)
    return ExitCode((value >> 8) & 0xFF, value & 0x7F)


def _state(tool_id: str, raw_state: str, exit_code: ExitCode | None) -> BackendJobState:
    mapped = map_state(raw_state)
    code = exit_code.code if (exit_code is not None and mapped.status.finished) else None
    return BackendJobState(
        tool_id=tool_id, status=mapped.status, raw_status=mapped.raw, exit_code=code
    )


def parse_squeue(output: str, wanted: Sequence[str] | None = None) -> dict[str, BackendJobState]:
    """Parse ``squeue -h -O`` output in :data:`SQUEUE_FORMAT`; keep only ``wanted`` ids."""
    keep = set(wanted) if wanted is not None else None
    states: dict[str, BackendJobState] = {}
    for line in output.splitlines():
        fields = line.split("|", 4)
        if len(fields) < 3:
            continue
        job_id, raw_state, raw_exit = (f.strip() for f in fields[:3])
        if not JOB_ID.fullmatch(job_id) or (keep is not None and job_id not in keep):
            continue
        states[job_id] = _state(job_id, raw_state, wait_status_exit_code(raw_exit))
    return states


def parse_squeue_comments(output: str) -> dict[str, str]:
    """Map job id -> comment from ``squeue -h -O`` output in :data:`SQUEUE_FORMAT`."""
    comments: dict[str, str] = {}
    for line in output.splitlines():
        fields = line.split("|", 4)
        if len(fields) >= 4 and JOB_ID.fullmatch(fields[0].strip()):
            comments[fields[0].strip()] = fields[3].strip()
    return comments


def parse_sacct(output: str, wanted: Sequence[str] | None = None) -> dict[str, BackendJobState]:
    """Parse ``sacct -P -n --format=JobIDRaw,State,ExitCode`` (also ``sacct -c``) output.

    Job steps (``123.batch``) are skipped; the allocation line carries the
    job's state. A job listed twice (requeued) keeps its last line.
    """
    keep = set(wanted) if wanted is not None else None
    states: dict[str, BackendJobState] = {}
    for line in output.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3:
            continue
        job_id, raw_state, raw_exit = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if not JOB_ID.fullmatch(job_id) or (keep is not None and job_id not in keep):
            continue
        states[job_id] = _state(job_id, raw_state, parse_exit_code(raw_exit))
    return states


def parse_scontrol_stdout(output: str) -> str | None:
    """The ``StdOut=`` path of ``scontrol show job -o`` output, if any."""
    match = _STDOUT_FIELD.search(output)
    if match is None or match.group(1) in ("", "(null)"):
        return None
    return match.group(1)


def parse_submitted_job_id(stdout: str) -> str | None:
    """The job id that ``submit_slurm.sh`` (``sbatch --parsable``) printed.

    ``--parsable`` prints ``ID`` or ``ID;CLUSTER``; the last such line counts.
    """
    for line in reversed(stdout.strip().splitlines()):
        candidate = line.strip().split(";", 1)[0]
        if candidate.isdigit():
            return candidate
    return None


def job_id_sort_key(job_id: str) -> tuple[int, int]:
    """Order job ids numerically, array tasks after their job (``12 < 12_1 < 13``)."""
    base, _, task = job_id.partition("_")
    return int(base), int(task or 0)
