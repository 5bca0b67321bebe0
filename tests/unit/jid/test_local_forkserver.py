"""The local backend's fork server: real lute.run_task jobs forked from one warm process."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from jid_service.backends import local_forkserver_client, local_runner
from jid_service.backends.base import SubmitSpec
from jid_service.backends.local import RUN_TASK_PREFIX, LocalBackend
from jid_service.job_environment import job_umask
from lute.job_status import JobStatus

from .conftest import until_final


def write_config(root: Path, seconds: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "work").mkdir(exist_ok=True)
    path = root / "sleep.yaml"
    path.write_text(f"---\ntitle: fork server\nwork_dir: {root / 'work'}\n---\n"
                    f"Sleep:\n  seconds: {seconds}\n")
    return path


def spec(config: Path, key: str) -> SubmitSpec:
    return SubmitSpec(job_key=key, experiment="exp1", run="5", user="u", taskname="Sleeper",
                      config_path=config)


@pytest.fixture
async def backend(tmp_path: Path):
    b = LocalBackend(tmp_path / "state", RUN_TASK_PREFIX, max_parallel=4, fork_server=True)
    yield b
    await b.aclose()


async def runner_pid(backend: LocalBackend, tool_id: str) -> int:
    pid_file = backend.root / "jobs" / tool_id / "pid"
    for _ in range(600):
        if pid_file.exists():
            return int(pid_file.read_text().split()[0])
        await asyncio.sleep(0.02)
    raise AssertionError("the runner never recorded its pid")


def stat_fields(pid: int) -> list[str]:
    # the fields after the command name: state, ppid, pgrp, session, ...
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_jobs_are_forked_from_one_server_and_set_up_like_new_processes(
        backend, tmp_path) -> None:
    config = write_config(tmp_path / "cfg", "2")
    sub = await backend.submit(spec(config, "a"))
    runner = await runner_pid(backend, sub.tool_id)
    server = backend._fork_server.pid
    assert server is not None
    _state, ppid, pgrp, session = stat_fields(runner)[:4]
    assert int(ppid) == server, "the runner is the fork server's child"
    assert int(session) == runner == int(pgrp), "the runner leads a session of its own"
    job_dir = backend.root / "jobs" / sub.tool_id
    assert os.readlink(f"/proc/{runner}/cwd") == str(job_dir)
    assert os.readlink(f"/proc/{runner}/fd/0") == os.devnull
    assert os.readlink(f"/proc/{runner}/fd/1") == sub.log_path
    status = Path(f"/proc/{runner}/status").read_text()
    assert f"Umask:\t{job_umask():04o}" in status
    for _ in range(100):  # lute.run_task, forked by the runner, in the runner's group
        if children(runner):
            break
        await asyncio.sleep(0.02)
    (run_task,) = children(runner)
    assert stat_fields(run_task)[2:4] == [str(runner), str(runner)]
    assert (await until_final(backend, sub.tool_id)).status is JobStatus.DONE
    log = Path(sub.log_path).read_text()
    assert "Task Sleep COMPLETED" in log

    second = await backend.submit(spec(write_config(tmp_path / "cfg2", "0"), "b"))
    assert (await until_final(backend, second.tool_id)).status is JobStatus.DONE
    assert backend._fork_server.pid == server, "one server serves every job"


async def test_a_job_sees_the_job_environment_and_no_daemon_secret(
        backend, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JID_AUTH_SECRET", "s3cret-of-the-daemon")
    monkeypatch.setenv("LUTE_PROBE_SECONDS", "0")
    ok = write_config(tmp_path / "ok", "'{{ $LUTE_PROBE_SECONDS }}'")
    passed = await backend.submit(spec(ok, "passed"))
    assert (await until_final(backend, passed.tool_id)).status is JobStatus.DONE
    refused = write_config(tmp_path / "no", "'{{ $JID_AUTH_SECRET }}'")
    hidden = await backend.submit(spec(refused, "hidden"))
    assert (await until_final(backend, hidden.tool_id)).status is JobStatus.FAILED
    assert "environment variable JID_AUTH_SECRET is not set" in Path(hidden.log_path).read_text()
    server = backend._fork_server.pid
    assert b"s3cret-of-the-daemon" not in Path(f"/proc/{server}/environ").read_bytes()
    assert b"s3cret-of-the-daemon" not in Path(f"/proc/{server}/cmdline").read_bytes()


async def test_a_job_outlives_its_server_and_the_next_job_gets_a_new_one(
        backend, tmp_path) -> None:
    sub = await backend.submit(spec(write_config(tmp_path / "cfg", "2"), "a"))
    await runner_pid(backend, sub.tool_id)
    old = backend._fork_server.pid
    os.kill(old, signal.SIGKILL)
    assert (await until_final(backend, sub.tool_id)).status is JobStatus.DONE
    nxt = await backend.submit(spec(write_config(tmp_path / "cfg2", "0"), "b"))
    assert (await until_final(backend, nxt.tool_id)).status is JobStatus.DONE
    assert backend._fork_server.pid not in (None, old)


async def test_a_cancel_stops_the_forked_run_task(backend, tmp_path) -> None:
    sub = await backend.submit(spec(write_config(tmp_path / "cfg", "60"), "a"))
    runner = await runner_pid(backend, sub.tool_id)
    for _ in range(200):
        if children(runner):
            break
        await asyncio.sleep(0.02)
    (run_task,) = children(runner)
    await backend.cancel(sub.tool_id)
    state = await until_final(backend, sub.tool_id, timeout=30)
    assert state.status is JobStatus.EXITED
    assert not Path(f"/proc/{run_task}").exists()


async def test_a_server_that_cannot_start_leaves_jobs_to_new_interpreters(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(local_forkserver_client, "SERVER_MODULE", "no_such_module_here")
    b = LocalBackend(tmp_path / "state", RUN_TASK_PREFIX, fork_server=True)
    try:
        sub = await b.submit(spec(write_config(tmp_path / "cfg", "0"), "a"))
        assert (await until_final(b, sub.tool_id)).status is JobStatus.DONE
        assert "Task Sleep COMPLETED" in Path(sub.log_path).read_text()
        assert b._fork_server.pid is None, "no server runs"
    finally:
        await b.aclose()


async def test_a_server_whose_code_changed_on_disk_is_replaced(backend, tmp_path) -> None:
    first = await backend.submit(spec(write_config(tmp_path / "cfg", "0"), "a"))
    assert (await until_final(backend, first.tool_id)).status is JobStatus.DONE
    old = backend._fork_server.pid
    source = Path(local_runner.__file__)
    before = source.stat()
    try:  # as an upgrade would: a module the server imported is newer on disk
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        nxt = await backend.submit(spec(write_config(tmp_path / "cfg2", "0"), "b"))
        assert (await until_final(backend, nxt.tool_id)).status is JobStatus.DONE
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert backend._fork_server.pid not in (None, old)
    assert not Path(f"/proc/{old}").exists(), "the stale server has exited"


async def test_a_hung_server_is_replaced_and_holds_a_job_up_briefly(backend, tmp_path) -> None:
    first = await backend.submit(spec(write_config(tmp_path / "cfg", "0"), "a"))
    assert (await until_final(backend, first.tool_id)).status is JobStatus.DONE
    hung = backend._fork_server.pid
    backend._fork_server.answer_timeout = 1.0
    os.kill(hung, signal.SIGSTOP)  # alive, but answers nothing
    try:
        # held up by one answer timeout, not by the 30 s a start-up may take
        nxt = await asyncio.wait_for(
            backend.submit(spec(write_config(tmp_path / "cfg2", "0"), "b")), 20)
        assert (await until_final(backend, nxt.tool_id)).status is JobStatus.DONE
    finally:
        if Path(f"/proc/{hung}").exists():
            os.kill(hung, signal.SIGCONT)
    assert "Task Sleep COMPLETED" in Path(nxt.log_path).read_text()
    for _ in range(100):  # the hung server was killed, not left stopped
        if not Path(f"/proc/{hung}").exists():
            break
        await asyncio.sleep(0.05)
    assert not Path(f"/proc/{hung}").exists()
