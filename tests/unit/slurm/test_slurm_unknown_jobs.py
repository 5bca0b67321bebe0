"""Jobs Slurm no longer knows at all: FAILED after a grace period, never on a failed lookup."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jid_service.backends.slurm import SlurmBackend
from lute.job_status import JobStatus


def _shims(directory: Path, squeue_lines: str = "", sacct_fails: bool = False) -> None:
    """squeue and sacct stand-ins: squeue lists ``squeue_lines``; sacct knows nothing."""
    directory.mkdir(exist_ok=True)
    (directory / "squeue.out").write_text(squeue_lines)
    (directory / "squeue").write_text(f"#!/bin/sh\ncat '{directory}/squeue.out'\n")
    sacct = ("echo 'sacct: error: Problem talking to the database' >&2; exit 1"
             if sacct_fails else "exit 0")
    (directory / "sacct").write_text(f"#!/bin/sh\n{sacct}\n")
    for name in ("squeue", "sacct"):
        (directory / name).chmod(0o755)


def _backend(tmp_path: Path, monkeypatch, grace: float, **shims) -> SlurmBackend:
    bin_dir = tmp_path / "bin"
    _shims(bin_dir, **shims)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return SlurmBackend(tmp_path / "submit_slurm.sh", tmp_path / "logs", fallback="sacct",
                        unknown_grace=grace)


async def test_a_job_unknown_to_every_source_fails_after_the_grace(tmp_path, monkeypatch):
    backend = _backend(tmp_path, monkeypatch, grace=0.5)
    assert await backend.statuses(["12"]) == {}  # unknown once: could be a blip
    await asyncio.sleep(0.6)
    state = (await backend.statuses(["12"]))["12"]
    assert (state.status, state.raw_status) == (JobStatus.FAILED, "UNKNOWN")
    assert backend.calls == {"squeue": 2, "sacct": 2}


async def test_a_failing_accounting_source_never_makes_a_job_unknown(tmp_path, monkeypatch):
    backend = _backend(tmp_path, monkeypatch, grace=0.0, sacct_fails=True)
    for _ in range(3):
        assert await backend.statuses(["12"]) == {}
        await asyncio.sleep(0.05)


async def test_a_job_seen_again_starts_its_grace_afresh(tmp_path, monkeypatch):
    backend = _backend(tmp_path, monkeypatch, grace=0.5)
    assert await backend.statuses(["12"]) == {}
    await asyncio.sleep(0.3)
    (tmp_path / "bin" / "squeue.out").write_text("12|RUNNING|0|jid:k|None\n")
    assert (await backend.statuses(["12"]))["12"].status == JobStatus.RUNNING
    (tmp_path / "bin" / "squeue.out").write_text("")
    await asyncio.sleep(0.3)  # 0.6 s since first unknown, 0.3 s since last seen
    assert await backend.statuses(["12"]) == {}
