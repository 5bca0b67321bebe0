"""Map raw Slurm / FirecREST job states to ARP statuses, keeping the raw string.

Slurm reports states like ``PENDING``, ``CANCELLED by 1234``, ``CANCELLED+``
(sacct's marker for a state with more detail) or ``COMPLETING``. FirecREST v2
passes Slurm's strings through unchanged, so both backends share this table.

Decisions:

- ``SUSPENDED`` maps to ``SUBMITTED``: a suspended job holds no CPUs and will
  run again once resumed, so it is waiting, like a pending one; it has not ended.
- An unknown state maps to ``SUBMITTED`` (not ended), never to a final status:
  the JID keeps polling and will see the next, known state, while a wrong final
  status would be permanent. The raw string is always kept, so an operator
  sees what the scheduler said.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from lute.job_status import JobStatus

# Keys are the bare Slurm base state (upper case, no "by N", no "+" suffix).
_STATE_TABLE: dict[str, JobStatus] = {
    # waiting to run (or to run again)
    "PENDING": JobStatus.SUBMITTED,
    "CONFIGURING": JobStatus.SUBMITTED,
    "REQUEUED": JobStatus.SUBMITTED,
    "REQUEUE_HOLD": JobStatus.SUBMITTED,
    "REQUEUE_FED": JobStatus.SUBMITTED,
    "RESV_DEL_HOLD": JobStatus.SUBMITTED,
    "SUSPENDED": JobStatus.SUBMITTED,
    "RESIZING": JobStatus.RUNNING,
    # running
    "RUNNING": JobStatus.RUNNING,
    "COMPLETING": JobStatus.RUNNING,
    "STAGE_OUT": JobStatus.RUNNING,
    "SIGNALING": JobStatus.RUNNING,
    "UPDATE_DB": JobStatus.RUNNING,
    "POWER_UP_NODE": JobStatus.SUBMITTED,
    # ended
    "COMPLETED": JobStatus.DONE,
    "FAILED": JobStatus.FAILED,
    "TIMEOUT": JobStatus.FAILED,
    "OUT_OF_MEMORY": JobStatus.FAILED,
    "NODE_FAIL": JobStatus.FAILED,
    "BOOT_FAIL": JobStatus.FAILED,
    "DEADLINE": JobStatus.FAILED,
    "SPECIAL_EXIT": JobStatus.FAILED,
    "CANCELLED": JobStatus.EXITED,
    "PREEMPTED": JobStatus.EXITED,
    "REVOKED": JobStatus.EXITED,
}

# squeue's compact codes (``%t``), for callers that ask for them.
_SHORT_CODES: dict[str, str] = {
    "PD": "PENDING",
    "CF": "CONFIGURING",
    "RQ": "REQUEUED",
    "RH": "REQUEUE_HOLD",
    "RD": "RESV_DEL_HOLD",
    "S": "SUSPENDED",
    "R": "RUNNING",
    "CG": "COMPLETING",
    "SO": "STAGE_OUT",
    "SI": "SIGNALING",
    "CD": "COMPLETED",
    "F": "FAILED",
    "TO": "TIMEOUT",
    "OOM": "OUT_OF_MEMORY",
    "NF": "NODE_FAIL",
    "BF": "BOOT_FAIL",
    "DL": "DEADLINE",
    "SE": "SPECIAL_EXIT",
    "CA": "CANCELLED",
    "PR": "PREEMPTED",
    "RV": "REVOKED",
}

UNKNOWN_STATE_STATUS = JobStatus.SUBMITTED
"""The status of a state this table does not know (see the module docstring)."""

_BASE_STATE = re.compile(r"[A-Z_]+")


class MappedState(NamedTuple):
    """An ARP status with the scheduler's own string and whether it was recognised."""

    status: JobStatus
    raw: str
    known: bool


def base_state(raw: str) -> str:
    """The bare Slurm state of a raw string: ``"CANCELLED by 1234"`` -> ``"CANCELLED"``.

    Accepts lower case, surrounding blanks, ``+`` suffixes, FirecREST/slurmrestd
    lists such as ``"RUNNING,COMPLETING"`` (the first one counts), and squeue's
    compact codes (``CA``, ``PD``). Returns ``""`` when nothing looks like a state.
    """
    text = raw.strip().upper()
    # slurmrestd/FirecREST may send several flags; the first is the base state
    text = text.replace("[", "").replace("]", "").replace("'", "").replace('"', "")
    first = re.split(r"[,\s]+", text, maxsplit=1)[0] if text else ""
    match = _BASE_STATE.match(first)
    if match is None:
        return ""
    state = match.group(0)
    return _SHORT_CODES.get(state, state)


def map_state(raw: str | None) -> MappedState:
    """Map a raw scheduler state string to an ARP :class:`JobStatus`.

    The raw string is returned unchanged (``None`` becomes ``""``); an unknown
    or empty state maps to :data:`UNKNOWN_STATE_STATUS` with ``known=False``.
    """
    raw_text = "" if raw is None else str(raw)
    status = _STATE_TABLE.get(base_state(raw_text))
    if status is None:
        return MappedState(UNKNOWN_STATE_STATUS, raw_text, False)
    return MappedState(status, raw_text, True)


class ExitCode(NamedTuple):
    """A Slurm ``ExitCode=RC:SIGNAL`` pair."""

    returncode: int
    signal: int

    @property
    def code(self) -> int:
        """One number for the job: the return code, or 128+signal when a signal ended it."""
        if self.signal:
            return 128 + self.signal
        return self.returncode


def parse_exit_code(raw: str | int | None) -> ExitCode | None:
    """Parse Slurm's exit code: ``"3:0"`` -> (3, 0), ``"0:15"`` -> (0, 15), ``"2"`` -> (2, 0).

    An int is taken as a plain return code. Returns ``None`` for ``None``, an
    empty string or anything that is not ``N`` or ``N:M`` with non-negative N, M.
    """
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return ExitCode(raw, 0) if raw >= 0 else None
    text = str(raw).strip()
    match = re.fullmatch(r"(\d+)(?::(\d+))?", text)
    if match is None:
        return None
    return ExitCode(int(match.group(1)), int(match.group(2) or 0))

