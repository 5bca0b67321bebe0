"""Parsing of real squeue/sacct/scontrol/sbatch output captured on Slurm 22.05.

The samples under ``samples/`` were captured from the project's single-node
cluster: six jobs (running, completed, ``exit 3``, held, cancelled while
pending, a second running one) plus one job cancelled while running.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jid_service.backends.slurm import (
    SQUEUE_FORMAT,
    is_unavailable_message,
    parse_sacct,
    parse_scontrol_stdout,
    parse_squeue,
    parse_squeue_comments,
    parse_submitted_job_id,
    wait_status_exit_code,
)
from lute.job_status import JobStatus

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_squeue_mixed_states_map_to_arp_statuses():
    states = parse_squeue(sample("squeue_mixed.txt"))
    assert {k: v.status for k, v in states.items()} == {
        "5": JobStatus.RUNNING,
        "6": JobStatus.DONE,
        "7": JobStatus.FAILED,
        "8": JobStatus.SUBMITTED,
        "9": JobStatus.EXITED,
        "10": JobStatus.RUNNING,
    }
    assert states["9"].raw_status == "CANCELLED"
    assert states["8"].raw_status == "PENDING"


def test_squeue_exit_code_is_decoded_from_the_wait_status():
    states = parse_squeue(sample("squeue_mixed.txt"))
    assert states["7"].exit_code == 3  # squeue printed 768
    assert states["6"].exit_code == 0
    # not ended: no exit code yet, whatever squeue prints
    assert states["5"].exit_code is None
    assert states["8"].exit_code is None


def test_squeue_cancelled_while_running_reports_the_signal():
    states = parse_squeue(sample("squeue_cancelled_running.txt"))
    assert states["4"].status is JobStatus.EXITED
    assert states["4"].exit_code == 128 + 15


def test_squeue_keeps_only_wanted_ids():
    states = parse_squeue(sample("squeue_mixed.txt"), ["7", "10", "12345"])
    assert sorted(states) == ["10", "7"]


def test_squeue_ignores_noise_lines():
    text = "garbage\n\nslurm_load_jobs error: x\n" + sample("squeue_mixed.txt")
    assert len(parse_squeue(text)) == 6


def test_squeue_comments_give_the_submission_tags():
    comments = parse_squeue_comments(sample("squeue_mixed.txt"))
    assert comments["7"] == "jid:fail-c"
    assert comments["8"] == "jid:held-d"


def test_squeue_format_puts_reason_last():
    assert SQUEUE_FORMAT.split(",")[0].startswith("JobID")
    assert SQUEUE_FORMAT.split(",")[-1].startswith("Reason")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", (0, 0)), ("768", (3, 0)), ("15", (0, 15)), ("256", (1, 0)), ("", None), ("N/A", None)],
)
def test_wait_status_exit_code(raw, expected):
    parsed = wait_status_exit_code(raw)
    assert (None if parsed is None else tuple(parsed)) == expected


def test_sacct_jobcomp_sample():
    states = parse_sacct(sample("sacct_jobcomp.txt"))
    assert states["6"].status is JobStatus.DONE
    assert states["7"].status is JobStatus.FAILED
    assert states["7"].exit_code == 3
    assert states["9"].status is JobStatus.EXITED
    # jobs still running or held are not in the completion log
    assert "5" not in states and "8" not in states


def test_sacct_skips_steps_and_keeps_cancelled_by():
    text = "41|CANCELLED by 1000|0:15\n41.batch|CANCELLED|0:15\n42|TIMEOUT|0:1\n"
    states = parse_sacct(text, ["41", "42"])
    assert sorted(states) == ["41", "42"]
    assert states["41"].raw_status == "CANCELLED by 1000"
    assert states["41"].status is JobStatus.EXITED
    assert states["42"].status is JobStatus.FAILED


def test_scontrol_stdout_path():
    path = parse_scontrol_stdout(sample("scontrol_show_job_failed.txt"))
    assert path == "/sdf/data/lcls/logs/7.out"
    assert parse_scontrol_stdout("JobId=1 StdOut=(null) Power=") is None
    assert parse_scontrol_stdout("") is None


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [("123\n", "123"), ("Using TCP\n456\n", "456"), ("789;cluster\n", "789"), ("nothing", None)],
)
def test_submitted_job_id(stdout, expected):
    assert parse_submitted_job_id(stdout) == expected


@pytest.mark.parametrize(
    "name", ["squeue_unreachable.stderr", "sbatch_unreachable.stderr"]
)
def test_unreachable_controller_messages(name):
    assert is_unavailable_message(sample(name))


@pytest.mark.parametrize(
    "name", ["sbatch_bad_partition.stderr", "squeue_invalid_id.stderr", "sacct_disabled.stderr"]
)
def test_other_errors_are_not_unavailability(name):
    assert not is_unavailable_message(sample(name))
