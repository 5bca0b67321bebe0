"""Log chunking (UTF-8 safe) and the exact launcher argv of the slurm backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from jid_service.backends.base import BackendError, SubmitSpec
from jid_service.backends.slurm import SlurmBackend, job_tag
from jid_service.log_text import read_log_chunk as read_log_bytes


def read_all(path: Path, limit: int) -> tuple[str, list[int]]:
    offset, parts, offsets = 0, [], []
    while True:
        chunk = read_log_bytes(path, offset, limit)
        if chunk.next_offset == offset:
            return "".join(parts), offsets
        assert chunk.offset == offset
        parts.append(chunk.text)
        offsets.append(chunk.next_offset)
        offset = chunk.next_offset


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 64])
def test_chunks_never_split_a_multibyte_character(tmp_path, limit):
    text = "peak \u00e9\u00e8 \u20ac10 \U0001f600 done\nligne 2 \u00fc\n"
    path = tmp_path / "job.out"
    path.write_text(text, encoding="utf-8")
    joined, offsets = read_all(path, limit)
    assert joined == text
    assert "\ufffd" not in joined
    assert offsets[-1] == len(text.encode())


def test_invalid_bytes_decode_with_replacement(tmp_path):
    path = tmp_path / "job.out"
    path.write_bytes(b"ok \xff\xfe end")
    chunk = read_log_bytes(path, 0, 100)
    assert chunk.text == "ok \ufffd\ufffd end"
    assert chunk.next_offset == 9


def test_truncated_character_at_end_of_a_growing_file_waits(tmp_path):
    path = tmp_path / "job.out"
    path.write_bytes("a\u20ac".encode()[:-1])  # writer is mid-character
    chunk = read_log_bytes(path, 0, 100)
    assert chunk.text == "a"
    assert chunk.next_offset == 1


def test_missing_log_reads_empty(tmp_path):
    chunk = read_log_bytes(tmp_path / "not-yet.out", 5, 10)
    assert (chunk.text, chunk.offset, chunk.next_offset) == ("", 5, 5)


def spec(**changes) -> SubmitSpec:
    base = {
        "job_key": "abc-123",
        "experiment": "mfxp1234",
        "run": "7",
        "user": "alice",
        "taskname": "Tester",
        "config_path": Path("/cfg/test.yaml"),
        "slurm_args": ("--partition=debug", "--ntasks=1"),
    }
    base.update(changes)
    return SubmitSpec(**base)


def test_render_is_the_exact_launcher_argv(tmp_path):
    backend = SlurmBackend(tmp_path / "submit_slurm.sh", tmp_path / "logs")
    rendering = backend.render(spec(debug=True))
    assert rendering.backend == "slurm"
    assert rendering.argv == [
        str(tmp_path / "submit_slurm.sh"),
        "-c", "/cfg/test.yaml", "-t", "Tester", "--debug", "-e", "mfxp1234", "-r", "7",
        "--partition=debug", "--ntasks=1", "--comment=jid:abc-123",
    ]


def test_argument_with_shell_metacharacters_stays_one_argv_element(tmp_path):
    backend = SlurmBackend(tmp_path / "submit_slurm.sh", tmp_path / "logs")
    argv = backend.argv(spec(experiment="x; rm -rf /", job_key="$(reboot)"))
    assert "x; rm -rf /" in argv
    assert not any("reboot" in a for a in argv)


def test_job_tag_hashes_unsafe_keys():
    assert job_tag("6571f0c2a9") == "jid:6571f0c2a9"
    unsafe = job_tag("a b|c")
    assert unsafe.startswith("jid:sha256-") and " " not in unsafe and "|" not in unsafe
    assert job_tag("a b|c") == unsafe != job_tag("a b|d")


async def test_statuses_of_no_valid_id_runs_nothing(tmp_path):
    backend = SlurmBackend(tmp_path / "submit_slurm.sh", tmp_path / "logs")
    assert await backend.statuses([]) == {}
    # ids that are not Slurm job ids never reach a command line
    assert await backend.statuses(["12; rm -rf /", "$(id)", ""]) == {}
    assert backend.calls == {}


async def test_cancel_refuses_a_non_numeric_id(tmp_path):
    backend = SlurmBackend(tmp_path / "submit_slurm.sh", tmp_path / "logs")
    with pytest.raises(BackendError, match="not a Slurm job id"):
        await backend.cancel("1 2")
    assert backend.calls == {}


async def test_read_log_without_a_path_finds_the_file_by_job_id(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "Tester_exp_r0007_2026-01-01T000000_412.out").write_text("hello\n")
    (logs / "Tester_exp_r0007_2026-01-01T000000_4120.out").write_text("other job\n")
    backend = SlurmBackend(tmp_path / "submit_slurm.sh", logs)
    chunk = await backend.read_log("412", None, 0, 100)
    assert chunk.text == "hello\n"
    assert (await backend.read_log("999", None, 0, 100)).text == ""


async def test_missing_sacct_disables_the_fallback_instead_of_failing_polls(tmp_path, monkeypatch):
    # a PATH whose squeue lists nothing and that has no sacct: the fallback
    # cannot run, the poll must not fail
    squeue = tmp_path / "squeue"
    squeue.write_text("#!/bin/sh\nexit 0\n")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    backend = SlurmBackend(tmp_path / "submit_slurm.sh", tmp_path / "logs")
    assert await backend.statuses(["12"]) == {}
    assert backend.fallback == "none"
    assert await backend.statuses(["12"]) == {}
    assert backend.calls == {"squeue": 2, "sacct": 1}
