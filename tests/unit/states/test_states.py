"""Raw Slurm/FirecREST state strings map to ARP statuses, the raw string kept."""

from __future__ import annotations

import pytest

from jid_service.backends.slurm.parsers import parse_sacct
from jid_service.backends.states import (
    UNKNOWN_STATE_STATUS,
    ExitCode,
    base_state,
    map_state,
    parse_exit_code,
)
from lute.job_status import JobStatus

S, R, D, F, X = (
    JobStatus.SUBMITTED,
    JobStatus.RUNNING,
    JobStatus.DONE,
    JobStatus.FAILED,
    JobStatus.EXITED,
)

STATE_TABLE = [
    ("PENDING", S),
    ("CONFIGURING", S),
    ("REQUEUED", S),
    ("REQUEUE_HOLD", S),
    ("RESV_DEL_HOLD", S),
    ("SUSPENDED", S),
    ("RUNNING", R),
    ("COMPLETING", R),
    ("STAGE_OUT", R),
    ("SIGNALING", R),
    ("COMPLETED", D),
    ("FAILED", F),
    ("TIMEOUT", F),
    ("OUT_OF_MEMORY", F),
    ("NODE_FAIL", F),
    ("BOOT_FAIL", F),
    ("DEADLINE", F),
    ("SPECIAL_EXIT", F),
    ("CANCELLED", X),
    ("CANCELLED by 1234", X),
    ("CANCELLED by 0", X),
    ("CANCELLED+", X),
    ("PREEMPTED", X),
    ("REVOKED", X),
    # spellings seen from squeue %t, sacct and slurmrestd-style flag lists
    ("cancelled by 1234", X),
    ("  COMPLETED  ", D),
    ("CA", X),
    ("PD", S),
    ("CD", D),
    ("TO", F),
    ("OOM", F),
    ("RUNNING,COMPLETING", R),
    ("['FAILED']", F),
]


@pytest.mark.parametrize(("raw", "expected"), STATE_TABLE)
def test_known_states_map_and_keep_raw(raw: str, expected: JobStatus) -> None:
    mapped = map_state(raw)
    assert mapped.status is expected
    assert mapped.raw == raw
    assert mapped.known


@pytest.mark.parametrize("raw", ["", "   ", "WEIRD_NEW_STATE", "12:34", "-", None])
def test_unknown_states_fall_back_to_not_finished(raw: str | None) -> None:
    mapped = map_state(raw)
    assert mapped.status is UNKNOWN_STATE_STATUS
    assert not mapped.status.finished
    assert not mapped.known
    assert mapped.raw == ("" if raw is None else raw)


def test_every_final_slurm_state_is_finished() -> None:
    for raw, expected in STATE_TABLE:
        assert map_state(raw).status.finished == expected.finished


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("CANCELLED by 1234", "CANCELLED"),
        ("CANCELLED+", "CANCELLED"),
        ("ca", "CANCELLED"),
        ("", ""),
    ],
)
def test_base_state(raw: str, base: str) -> None:
    assert base_state(raw) == base


@pytest.mark.parametrize(
    ("raw", "parsed", "number"),
    [
        ("3:0", ExitCode(3, 0), 3),
        ("0:0", ExitCode(0, 0), 0),
        ("0:15", ExitCode(0, 15), 143),
        ("0:9", ExitCode(0, 9), 137),
        ("1:9", ExitCode(1, 9), 137),
        (" 2 ", ExitCode(2, 0), 2),
        (255, ExitCode(255, 0), 255),
        (0, ExitCode(0, 0), 0),
    ],
)
def test_exit_codes(raw: str | int, parsed: ExitCode, number: int) -> None:
    assert parse_exit_code(raw) == parsed
    assert parsed.code == number
    # the number a job reports, through the sacct parser
    assert parse_sacct(f"1|FAILED|{raw}\n")["1"].exit_code == number


@pytest.mark.parametrize("raw", [None, "", "abc", "3:", ":0", "-1:0", -1, "3:0:1", True])
def test_unparsable_exit_codes(raw: object) -> None:
    assert parse_exit_code(raw) is None  # type: ignore[arg-type]
    assert parse_sacct(f"1|FAILED|{raw}\n")["1"].exit_code is None


def test_signal_flag() -> None:
    assert parse_exit_code("0:15").signal == 15  # type: ignore[union-attr]
    assert parse_exit_code("3:0").signal == 0  # type: ignore[union-attr]
