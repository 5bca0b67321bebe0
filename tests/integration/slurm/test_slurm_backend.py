"""The slurm backend alone against the real cluster: submit, poll, logs, cancel, errors."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from jid_service.backends.base import (
    BackendJobState,
    BackendUnavailable,
    JobStatus,
    SubmissionRejected,
    SubmitSpec,
)
from jid_service.backends.slurm import SlurmBackend, job_tag
from tests.integration.slurm.cluster import (
    LAUNCHER,
    scancel_quietly,
    squeue_comments,
    write_config,
)

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]


def spec(config: Path, taskname: str, key: str, *slurm_args: str) -> SubmitSpec:
    return SubmitSpec(
        job_key=f"{key}-{time.time_ns()}",
        experiment="tst00001",
        run="7",
        user="tester",
        taskname=taskname,
        config_path=config,
        slurm_args=("--partition=debug", "--ntasks=1", *slurm_args),
    )


async def wait_finished(
    backend: SlurmBackend, ids: list[str], timeout: float = 120.0
) -> tuple[dict[str, BackendJobState], dict[str, list[JobStatus]]]:
    """Poll with one statuses() call per round until every job has ended.

    Returns the last states and, per job, the statuses seen in order; counts
    the rounds in ``backend.rounds``.
    """
    seen: dict[str, list[JobStatus]] = {i: [] for i in ids}
    deadline = time.monotonic() + timeout
    backend.rounds = 0  # type: ignore[attr-defined]
    while True:
        states = await backend.statuses(ids)
        backend.rounds += 1  # type: ignore[attr-defined]
        for job_id, state in states.items():
            if not seen[job_id] or seen[job_id][-1] is not state.status:
                seen[job_id].append(state.status)
        if len(states) == len(ids) and all(s.status.finished for s in states.values()):
            return states, seen
        assert time.monotonic() < deadline, f"jobs did not finish: {states}"
        await asyncio.sleep(0.3)


async def read_whole_log(backend: SlurmBackend, tool_id: str, log_path: str | None) -> str:
    parts, offset = [], 0
    while True:
        chunk = await backend.read_log(tool_id, log_path, offset, 256)
        if chunk.next_offset == offset:
            return "".join(parts)
        parts.append(chunk.text)
        offset = chunk.next_offset


async def test_tester_and_sleeper_run_to_done(backend: SlurmBackend, task_config: Path):
    tester = await backend.submit(spec(task_config, "Tester", "tester"))
    sleeper = await backend.submit(spec(task_config, "Sleeper", "sleeper"))
    try:
        assert tester.tool_id.isdigit() and sleeper.tool_id.isdigit()
        # the log path is the launcher's file name rule, in the configured log dir
        assert sleeper.log_path is not None
        log_path = Path(sleeper.log_path)
        assert log_path.parent == backend.log_dir
        assert log_path.name.startswith("Sleeper_tst00001_r0007_")
        assert log_path.name.endswith(f"_{sleeper.tool_id}.out")

        squeue_before = backend.calls.get("squeue", 0)
        states, seen = await wait_finished(backend, [tester.tool_id, sleeper.tool_id])
        polls = backend.calls["squeue"] - squeue_before
        # one squeue per statuses() call for both jobs, no fallback while squeue lists them
        assert polls == backend.rounds  # type: ignore[attr-defined]
        assert backend.calls.get("sacct", 0) == 0
        assert states[tester.tool_id].status is JobStatus.DONE
        assert states[sleeper.tool_id].status is JobStatus.DONE
        assert states[sleeper.tool_id].raw_status == "COMPLETED"
        assert states[sleeper.tool_id].exit_code == 0
        # the 3 s sleeper was seen waiting or running before it was done
        assert seen[sleeper.tool_id][0] in (JobStatus.SUBMITTED, JobStatus.RUNNING)
        assert JobStatus.RUNNING in seen[sleeper.tool_id]
        assert seen[sleeper.tool_id][-1] is JobStatus.DONE

        text = await read_whole_log(backend, sleeper.tool_id, sleeper.log_path)
        assert text == log_path.read_text(errors="replace")
        assert text.strip(), "the Sleeper log is empty"
    finally:
        scancel_quietly([tester.tool_id, sleeper.tool_id])


async def test_failing_tester_fails_with_its_error_in_the_log(
    backend: SlurmBackend, task_config: Path
):
    job = await backend.submit(spec(task_config, "FailingTester", "failing"))
    states, _ = await wait_finished(backend, [job.tool_id])
    state = states[job.tool_id]
    assert state.status is JobStatus.FAILED
    assert state.raw_status == "FAILED"
    assert state.exit_code not in (None, 0)
    text = await read_whole_log(backend, job.tool_id, job.log_path)
    assert "Traceback" in text and "Error" in text, text[-2000:]


async def test_cancel_running_sleeper_ends_exited(backend: SlurmBackend, tmp_path: Path):
    config = write_config(tmp_path / "long", sleep_seconds=120)
    job = await backend.submit(spec(config, "Sleeper", "cancel"))
    try:
        deadline = time.monotonic() + 60
        while (await backend.statuses([job.tool_id]))[job.tool_id].status is not JobStatus.RUNNING:
            assert time.monotonic() < deadline, "the Sleeper never started"
            await asyncio.sleep(0.3)
        await backend.cancel(job.tool_id)
        states, _ = await wait_finished(backend, [job.tool_id], timeout=60)
        assert states[job.tool_id].status is JobStatus.EXITED
        assert states[job.tool_id].raw_status.startswith("CANCELLED")
        # cancelling an ended job is not an error
        await backend.cancel(job.tool_id)
    finally:
        scancel_quietly([job.tool_id])


async def test_bad_partition_is_rejected_and_nothing_is_submitted(
    backend: SlurmBackend, task_config: Path
):
    bad = spec(task_config, "Tester", "rejected", "--partition=nosuch")
    with pytest.raises(SubmissionRejected, match=r"(?i)partition"):
        await backend.submit(bad)
    assert job_tag(bad.job_key) not in squeue_comments().values()


async def test_ids_the_cluster_forgot(backend: SlurmBackend, task_config: Path):
    # ids far beyond anything this cluster handed out, alone and mixed in
    assert await backend.statuses(["99999998"]) == {}
    assert await backend.statuses(["99999998", "99999999"]) == {}
    job = await backend.submit(spec(task_config, "Tester", "forgot"))
    await wait_finished(backend, [job.tool_id])
    calls_before = sum(backend.calls.values())
    mixed = await backend.statuses([job.tool_id, "99999999"])
    assert set(mixed) == {job.tool_id}
    assert mixed[job.tool_id].status is JobStatus.DONE
    # one squeue plus at most one fallback process per statuses() call
    assert sum(backend.calls.values()) - calls_before <= 2


def forgetful(backend: SlurmBackend, shim_dir: Path) -> SlurmBackend:
    """A backend like ``backend`` whose squeue lists nothing, as once jobs pass MinJobAge."""
    shim_dir.mkdir()
    squeue = shim_dir / "squeue"
    squeue.write_text("#!/bin/sh\nexit 0\n")
    squeue.chmod(0o755)
    return SlurmBackend(backend.launcher, backend.log_dir, query_timeout=backend.query_timeout,
                        env={"PATH": f"{shim_dir}:{os.environ['PATH']}"})


async def test_fallback_reads_ended_jobs_from_accounting(
    backend: SlurmBackend, task_config: Path, tmp_path: Path
):
    """What the backend answers for a job squeue dropped (after MinJobAge).

    squeue keeps jobs for 300 s; a backend whose squeue lists nothing shows
    what a poll gets once they are gone. Without slurmdbd the first (``auto``)
    call learns that accounting is off and switches to the jobcomp log.
    """
    job = await backend.submit(spec(task_config, "FailingTester", "fallback"))
    await wait_finished(backend, [job.tool_id])
    backend = forgetful(backend, tmp_path / "shims")
    first = await backend.statuses([job.tool_id])
    if backend.fallback == "jobcomp":  # learnt: accounting storage is disabled
        assert first == {}
        deadline = time.monotonic() + 30
        while not (found := await backend.statuses([job.tool_id])):
            assert time.monotonic() < deadline, "the jobcomp log never listed the job"
            await asyncio.sleep(0.5)
    else:
        found = first
    assert found[job.tool_id].status is JobStatus.FAILED
    assert found[job.tool_id].exit_code not in (None, 0)


async def test_unreachable_controller_is_backend_unavailable(
    slurm_cluster: None, tmp_path: Path, task_config: Path
):
    """A controller nobody listens for (a copy of slurm.conf with another port)."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    assert re.search(r"(?m)^SlurmctldPort=", conf), "slurm.conf names no SlurmctldPort"
    bad_conf = tmp_path / "slurm.conf"
    # port 1: nothing listens there, so every client gets "connection refused"
    bad_conf.write_text(re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=1", conf))
    backend = SlurmBackend(LAUNCHER, tmp_path / "logs", env={"SLURM_CONF": str(bad_conf)},
                           query_timeout=30.0)

    async def expect_unavailable(call):
        with pytest.raises(BackendUnavailable) as info:
            await call
        assert info.value.retry_after > 0

    await asyncio.gather(
        expect_unavailable(backend.submit(spec(task_config, "Tester", "unreachable"))),
        expect_unavailable(backend.statuses(["1", "2"])),
        expect_unavailable(backend.health()),
        expect_unavailable(backend.cancel("1")),
    )


async def test_health_of_the_live_cluster(backend: SlurmBackend):
    await backend.health()


async def test_find_submitted_by_job_key(backend: SlurmBackend, task_config: Path):
    """A job is found again by its _id (its --comment), e.g. by a restarted daemon."""
    wanted = spec(task_config, "Tester", "find")
    job = await backend.submit(wanted)
    try:
        fresh = SlurmBackend(LAUNCHER, backend.log_dir)
        found = await fresh.find_submitted(wanted.job_key)
        assert found is not None
        assert found.tool_id == job.tool_id
        assert found.log_path == job.log_path
        assert await fresh.find_submitted(f"never-submitted-{time.time_ns()}") is None
    finally:
        scancel_quietly([job.tool_id])


async def test_submitting_one_key_twice_gives_one_job(backend: SlurmBackend, task_config: Path):
    """A repeated submission of one _id (a lost answer, a restarted daemon) is not resubmitted."""
    wanted = spec(task_config, "Tester", "twice")
    first = await backend.submit(wanted)
    try:
        again = await SlurmBackend(LAUNCHER, backend.log_dir).submit(wanted)
        assert again.tool_id == first.tool_id
        tags = [c for c in squeue_comments().values() if c == job_tag(wanted.job_key)]
        assert len(tags) == 1
    finally:
        scancel_quietly([first.tool_id])
