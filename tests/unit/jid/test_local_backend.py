"""The local backend on its own: real detached processes, file state, UTF-8 safe log reads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from jid_service.backends.base import SubmitSpec
from jid_service.backends.local import LocalBackend
from jid_service.log_text import read_log_chunk as read_text_chunk
from lute.job_status import JobStatus

from .conftest import FAKE_TASK, until_final


def spec(config: Path, task: str = "Tester", key: str = "k1") -> SubmitSpec:
    return SubmitSpec(job_key=key, experiment="exp1", run="5", user="u", taskname=task,
                      config_path=config)


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "state", [sys.executable, str(FAKE_TASK)], max_parallel=4)


async def test_submit_is_idempotent_per_key(backend, config_root) -> None:
    a = await backend.submit(spec(config_root / "test.yaml"))
    b = await backend.submit(spec(config_root / "test.yaml"))
    assert a == b
    c = await backend.submit(spec(config_root / "test.yaml", key="k2"))
    assert c.tool_id != a.tool_id
    assert (await until_final(backend, a.tool_id)).status is JobStatus.DONE
    await until_final(backend, c.tool_id)


async def test_runner_killed_with_sigkill_is_lost(backend, config_root) -> None:
    sub = await backend.submit(spec(config_root / "test.yaml", task="Sleeper"))
    pid_file = backend.root / "jobs" / sub.tool_id / "pid"
    for _ in range(200):
        if pid_file.exists():
            break
        await asyncio.sleep(0.02)
    pid = int(pid_file.read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)
    state = await until_final(backend, sub.tool_id)
    assert (state.status, state.raw_status) == (JobStatus.FAILED, "LOST")


async def test_unknown_ids_and_cancel_are_harmless(backend) -> None:
    assert await backend.statuses(["0123abcd", "../../etc", ""]) == {}
    await backend.cancel("0123abcd")
    await backend.cancel("../../etc")
    chunk = await backend.read_log("0123abcd", None, 0, 10)
    assert chunk.text == "" and chunk.next_offset == 0


async def test_render_and_health(backend, config_root) -> None:
    rendering = backend.render(spec(config_root / "test.yaml").model_copy(update={"debug": True}))
    assert rendering.backend == "local" and rendering.script is None
    assert rendering.argv == [sys.executable, str(FAKE_TASK), "-c",
                              str(config_root / "test.yaml"), "-t", "Tester", "--debug"]
    await backend.health()
    assert list((backend.root / "jobs").iterdir()) == []


def test_read_text_chunk_never_splits_a_character(tmp_path: Path) -> None:
    text = "aé✓😀b\n" * 3
    path = tmp_path / "log"
    path.write_text(text, encoding="utf-8")
    size = len(text.encode())
    for limit in range(1, 12):
        out, offset = "", 0
        for _ in range(size + 5):
            chunk = read_text_chunk(path, offset, limit)
            assert chunk.offset == offset
            if chunk.next_offset == offset:
                break
            if limit >= 4:
                assert "\ufffd" not in chunk.text
            out += chunk.text
            offset = chunk.next_offset
        assert offset == size
        if limit >= 4:
            assert out == text
    missing = read_text_chunk(tmp_path / "nope", 7, 10)
    assert (missing.text, missing.next_offset) == ("", 7)


def test_a_second_runner_of_the_same_job_does_nothing(tmp_path: Path) -> None:
    import subprocess

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    out = tmp_path / "ran"
    command = [sys.executable, "-c", f"open({str(out)!r}, 'a').write('ran\\n')"]
    argv = [sys.executable, "-m", "jid_service.backends.local_runner", str(job_dir / "exit"),
            "--", *command]
    first = subprocess.run(argv, timeout=60, check=False)
    second = subprocess.run(argv, timeout=60, check=False)
    assert (first.returncode, second.returncode) == (0, 0)
    assert out.read_text() == "ran\n"
    assert (job_dir / "started").exists() and (job_dir / "pid").exists()
    outcome = json.loads((job_dir / "exit").read_text())
    assert (outcome["exit_code"], outcome["cancelled"]) == (0, False)
    assert outcome["ended_at"] >= outcome["started_at"] and outcome["max_rss_bytes"] > 0


async def test_start_interrupted_before_the_claim_is_requeued(tmp_path, config_root) -> None:
    """The daemon died after picking a queued job but before its runner claimed it."""
    first = LocalBackend(tmp_path / "state", [sys.executable, str(FAKE_TASK)], max_parallel=1)
    blocker = await first.submit(spec(config_root / "test.yaml", task="Sleeper", key="a"))
    sub = await first.submit(spec(config_root / "test.yaml", key="b"))
    # as if the daemon died right after moving "b" from the queue to running/
    for marker in (first.root / "queue").glob(f"*_{sub.tool_id}"):
        marker.unlink()
    stale = first.root / "running" / sub.tool_id
    stale.touch()
    os.utime(stale, (0, 0))
    await first.cancel(blocker.tool_id)
    restarted = LocalBackend(tmp_path / "state", [sys.executable, str(FAKE_TASK)],
                             max_parallel=1)
    state = await until_final(restarted, sub.tool_id)
    assert state.status is JobStatus.DONE
    assert (await until_final(restarted, blocker.tool_id)).status is JobStatus.EXITED
