"""The ``local`` backend: run managed tasks as detached processes on this host.

Each job is ``lute-run-task -c CONFIG -t NAME [--debug]`` wrapped by
:mod:`jid_service.backends.local_runner`, started in its own session with stdout
and stderr in a log file. Jobs of the default command are forked from a
pre-imported interpreter (:mod:`jid_service.backends.local_forkserver`), which
saves two interpreter starts and their imports per job; when it cannot start
a job, the job is started as two new interpreters.

All state lives in files under ``<state_dir>/local``, so a JID restart (even
``kill -9``) loses nothing and never starts a job twice::

    jobs/<id>/spec.json   what to run (argv, environment additions, log path)
    jobs/<id>/started     created exclusively by the one runner that may run the job
    jobs/<id>/pid         "<pid> <start time>" of that runner
    jobs/<id>/exit        {"exit_code", "cancelled"}, written atomically at the end
    jobs/<id>/cancelled   marker: a cancel was requested
    keys/<sha256(_id)>    the job id of a control document (idempotent submit)
    queue/<ns>_<id>       a job waiting for a free slot (``max_parallel``)
    running/<id>          a started job not yet seen finished

At most ``max_parallel`` jobs run; the others wait as SUBMITTED and are started
by :meth:`LocalBackend.tick`, which the JID's poller calls once per tick.

A job runs at most once even if the JID dies at any instant: the runner claims
``started`` with ``O_EXCL`` before anything else, and a second runner of the
same job (started again after a restart) finds the claim and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from jid_service.backends.base import (
    Backend,
    BackendJobState,
    BackendUnavailable,
    Rendering,
    SubmitSpec,
    Submitted,
)
from jid_service.backends.job_cost import CostReading
from jid_service.backends.local_config import LocalConfig
from jid_service.backends.local_costs import read_cost
from jid_service.backends.local_forkserver_client import ForkServer, ForkServerError, ForkServerJob
from jid_service.backends.local_runner import write_exit_file
from jid_service.backends.slurm_dialect import log_date, log_path_for
from jid_service.job_environment import job_environment, job_umask, private_directory
from jid_service.log_text import LogChunk, read_log_chunk
from jid_service.settings import DEFAULT_LOCAL_COMMAND
from lute.execution.liveness import start_ticks
from lute.job_status import JobStatus

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings

log = logging.getLogger(__name__)

RUNNER_MODULE = "jid_service.backends.local_runner"
RUN_TASK_PREFIX = list(DEFAULT_LOCAL_COMMAND)
"""The default command, which the fork server can run without a new interpreter."""
START_GRACE_SECONDS = 30.0
"""How long a runner may take to claim its job and record its pid."""


class LocalBackend(Backend):
    """Detached local processes with file-based state.

    Args:
        state_dir: where job state and logs live (``<state_dir>/local``).
        command: argv prefix of a managed-task run (``python -m lute.run_task``).
        max_parallel: how many jobs may run at once.
    """

    name = "local"

    @classmethod
    def from_config(cls, config: LocalConfig) -> LocalBackend:
        """The backend the daemon runs, as its settings describe it."""
        return cls(config.state_dir, config.command, max_parallel=config.max_parallel,
                   env_passthrough=config.env_passthrough, fork_server=config.fork_server)

    def __init__(self, state_dir: Path, command: list[str], max_parallel: int = 16,
                 env_passthrough: list[str] | None = None, fork_server: bool = False) -> None:
        self.root = Path(state_dir) / "local"
        self.command = list(command)
        self.max_parallel = max_parallel
        self.env_passthrough = list(env_passthrough or [])
        self._children: dict[str, subprocess.Popen[bytes] | ForkServerJob] = {}
        self._fork_server = (
            ForkServer(job_environment(os.environ, self.env_passthrough))
            if fork_server else None
        )
        self._lock = asyncio.Lock()
        # job specs, keys and logs are the daemon's: no other local user lists them
        private_directory(Path(state_dir))
        private_directory(self.root)
        for sub in ("jobs", "keys", "queue", "running", "logs"):
            private_directory(self.root / sub)

    def _job_dir(self, tool_id: str) -> Path:
        if not tool_id.isalnum():  # ids are ours (hex); anything else is not a job here
            raise KeyError(tool_id)
        return self.root / "jobs" / tool_id

    def _key_file(self, job_key: str) -> Path:
        return self.root / "keys" / hashlib.sha256(job_key.encode()).hexdigest()

    def task_argv(self, spec: SubmitSpec) -> list[str]:
        """The managed-task command a job runs."""
        return [*self.command, *spec.run_task_args()]

    async def submit(self, spec: SubmitSpec) -> Submitted:
        """Queue the job (idempotent on ``spec.job_key``) and start it if a slot is free."""
        async with self._lock:
            submitted = await asyncio.to_thread(self._submit_sync, spec)
        await self.tick()
        return submitted

    def _submit_sync(self, spec: SubmitSpec) -> Submitted:
        key_file = self._key_file(spec.job_key)
        existing = self._existing(key_file)
        if existing is not None:
            return existing
        tool_id = uuid.uuid4().hex[:16]
        job_dir = self._job_dir(tool_id)
        job_dir.mkdir(parents=True)
        log_path = log_path_for(self.root / "logs", spec, log_date(), tool_id)
        env = {"EXPERIMENT": spec.experiment, "RUN_NUM": spec.run, "LUTE_JOB_ID": tool_id}
        if spec.kerberos_cache is not None:
            env["KRB5CCNAME"] = spec.kerberos_cache
        record = {"argv": self.task_argv(spec), "env": env, "log_path": str(log_path),
                  "job_key": spec.job_key, "submitted_at": time.time()}
        tmp = job_dir / "spec.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, job_dir / "spec.json")
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # a twin submission won the race: keep its job
            (job_dir / "spec.json").unlink()
            job_dir.rmdir()
            found = self._existing(key_file)
            if found is None:
                raise BackendUnavailable("local backend: job key in flux, retry", 1.0) from None
            return found
        with os.fdopen(fd, "w") as fh:
            fh.write(tool_id)
        (self.root / "queue" / f"{time.time_ns():020d}_{tool_id}").touch()
        return Submitted(tool_id=tool_id, log_path=str(log_path))

    async def find_submitted(self, job_key: str) -> Submitted | None:
        """The job queued under ``job_key`` by an interrupted submission, if any."""
        return await asyncio.to_thread(self._existing, self._key_file(job_key))

    def _existing(self, key_file: Path) -> Submitted | None:
        try:
            tool_id = key_file.read_text().strip()
        except FileNotFoundError:
            return None
        if not tool_id:
            return None
        try:
            spec = json.loads((self._job_dir(tool_id) / "spec.json").read_text())
        except (OSError, ValueError, KeyError):
            return None
        return Submitted(tool_id=tool_id, log_path=spec["log_path"])

    async def tick(self) -> None:
        """Reap finished children, then start queued jobs while slots are free."""
        async with self._lock:
            await asyncio.to_thread(self._tick_sync)

    def _require_state_dir(self) -> None:
        # a vanished state dir (an unmounted file system) must read as an
        # outage, not as every job being unknown
        if not (self.root / "jobs").is_dir():
            raise BackendUnavailable(f"local backend: state dir {self.root} is missing", 5.0)

    def _tick_sync(self) -> None:
        self._require_state_dir()
        if self._fork_server is not None:
            self._fork_server.start_soon()
        for tool_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[tool_id]
                job_dir = self._job_dir(tool_id)
                if not (job_dir / "started").exists() and not (job_dir / "exit").exists():
                    # the runner died before it could claim the job (it cannot start)
                    write_exit_file(job_dir / "exit", child.returncode or 127, cancelled=False)
        running = 0
        for marker in (self.root / "running").iterdir():
            state = self._state(marker.name)
            if state is None or state.status.finished:
                marker.unlink(missing_ok=True)
            else:
                running += 1
        queued = sorted(p.name for p in (self.root / "queue").iterdir())
        for name in queued:
            if running >= self.max_parallel:
                break
            tool_id = name.split("_", 1)[1]
            self._start(tool_id)
            (self.root / "queue" / name).unlink(missing_ok=True)
            running += 1

    def _start(self, tool_id: str) -> None:
        job_dir = self._job_dir(tool_id)
        if (job_dir / "exit").exists() or (job_dir / "started").exists():
            return  # cancelled while queued, or started before a restart
        spec = json.loads((job_dir / "spec.json").read_text())
        log_path = Path(spec["log_path"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = job_environment(os.environ, self.env_passthrough, spec["env"])
        argv = [sys.executable, "-m", RUNNER_MODULE, str(job_dir / "exit"), "--", *spec["argv"]]
        (self.root / "running" / tool_id).touch()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(log_fd, "ab") as log_fh:
            forked = self._fork(tool_id, job_dir, log_path, spec["argv"], env)
            if forked is not None:
                self._watch(tool_id, forked)
                return
            try:
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    cwd=job_dir,
                    env=env,
                    umask=job_umask(),
                    start_new_session=True,
                )
            except OSError as err:
                log_fh.write(f"local backend: cannot start the job: {err}\n".encode())
                write_exit_file(job_dir / "exit", 127, cancelled=False)
                return
        self._watch(tool_id, child)

    def _fork(self, tool_id: str, job_dir: Path, log_path: Path, argv: list[str],
              env: dict[str, str]) -> ForkServerJob | None:
        """The job's runner forked by the fork server; None where it cannot be."""
        if self._fork_server is None or argv[:len(RUN_TASK_PREFIX)] != RUN_TASK_PREFIX:
            return None
        try:
            return self._fork_server.start_job(
                job_id=tool_id, job_dir=job_dir, exit_file=job_dir / "exit",
                log_path=log_path, args=argv[len(RUN_TASK_PREFIX):], env=env,
                umask=job_umask())
        except ForkServerError as err:
            log.warning("local backend: %s; job %s starts in new interpreters", err, tool_id)
            return None

    def _watch(self, tool_id: str, child: subprocess.Popen[bytes] | ForkServerJob) -> None:
        # the runner itself claims the job and records its pid (see local_runner)
        self._children[tool_id] = child
        threading.Thread(target=self._report_exit, args=(child,), daemon=True,
                         name=f"local-job-{tool_id}").start()

    def _report_exit(self, child: subprocess.Popen[bytes] | ForkServerJob) -> None:
        # the runner writes the job's outcome and then exits: tell the JID at
        # once instead of leaving it to the next poll tick
        child.wait()
        notify = self.on_change
        if notify is not None:
            with contextlib.suppress(RuntimeError):  # the JID's loop has closed
                notify()

    def _runner_alive(self, job_dir: Path) -> bool:
        try:
            pid_s, _, started = (job_dir / "pid").read_text().partition(" ")
            pid = int(pid_s)
        except (OSError, ValueError):
            return False
        now_started = start_ticks(pid)
        return now_started is not None and (not started or str(now_started) == started)

    def _read_exit(self, job_dir: Path) -> BackendJobState | None:
        try:
            outcome = json.loads((job_dir / "exit").read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        code = outcome.get("exit_code")
        tool_id = job_dir.name
        if outcome.get("cancelled") or ((job_dir / "cancelled").exists() and code != 0):
            return BackendJobState(tool_id=tool_id, status=JobStatus.EXITED,
                                   raw_status="CANCELLED", exit_code=code)
        if code == 0:
            return BackendJobState(tool_id=tool_id, status=JobStatus.DONE,
                                   raw_status="COMPLETED", exit_code=0)
        return BackendJobState(tool_id=tool_id, status=JobStatus.FAILED,
                               raw_status="FAILED", exit_code=code)

    def _state(self, tool_id: str) -> BackendJobState | None:
        try:
            job_dir = self._job_dir(tool_id)
        except KeyError:
            return None
        if not (job_dir / "spec.json").exists():
            return None
        done = self._read_exit(job_dir)
        if done is not None:
            return done
        if not (job_dir / "pid").exists():
            claimed = job_dir / "started"
            marker = self.root / "running" / tool_id
            stalled = next((p for p in (claimed, marker) if p.exists()), None)
            if stalled is not None and tool_id not in self._children and \
                    time.time() - stalled.stat().st_mtime > START_GRACE_SECONDS:
                if claimed.exists():  # claimed, then died before recording its pid
                    return BackendJobState(tool_id=tool_id, status=JobStatus.FAILED,
                                           raw_status="LOST")
                # the daemon died between deciding to start the job and the
                # runner's claim: nothing ran, so queue it again
                marker.unlink(missing_ok=True)
                (self.root / "queue" / f"{time.time_ns():020d}_{tool_id}").touch()
            return BackendJobState(tool_id=tool_id, status=JobStatus.SUBMITTED,
                                   raw_status="PENDING")
        if self._runner_alive(job_dir):
            return BackendJobState(tool_id=tool_id, status=JobStatus.RUNNING, raw_status="RUNNING")
        done = self._read_exit(job_dir)  # it may have ended between the two looks
        if done is not None:
            return done
        if (job_dir / "cancelled").exists():
            return BackendJobState(tool_id=tool_id, status=JobStatus.EXITED,
                                   raw_status="CANCELLED")
        # the runner vanished without writing its outcome (killed with SIGKILL)
        return BackendJobState(tool_id=tool_id, status=JobStatus.FAILED, raw_status="LOST")

    async def statuses(self, tool_ids: list[str]) -> dict[str, BackendJobState]:
        """States of many jobs, read from their files."""

        def read_all() -> dict[str, BackendJobState]:
            self._require_state_dir()
            out: dict[str, BackendJobState] = {}
            for tool_id in tool_ids:
                state = self._state(tool_id)
                if state is not None:
                    out[tool_id] = state
            return out

        return await asyncio.to_thread(read_all)

    async def costs(self, tool_ids: Sequence[str]) -> dict[str, CostReading]:
        """What the jobs cost, from their exit files (see :mod:`.local_costs`)."""

        def read_all() -> dict[str, CostReading]:
            out: dict[str, CostReading] = {}
            for tool_id in tool_ids:
                with contextlib.suppress(KeyError):
                    if (reading := read_cost(self._job_dir(tool_id))) is not None:
                        out[tool_id] = reading
            return out

        return await asyncio.to_thread(read_all)

    async def read_log(
        self, tool_id: str, log_path: str | None, offset: int, limit: int
    ) -> LogChunk:
        """Read the job's log file from ``offset``."""
        if log_path is None:
            try:
                spec = json.loads((self._job_dir(tool_id) / "spec.json").read_text())
            except (OSError, ValueError, KeyError):
                return LogChunk(text="", offset=offset, next_offset=offset)
            log_path = spec["log_path"]
        return await asyncio.to_thread(read_log_chunk, Path(log_path), offset, limit)

    async def cancel(self, tool_id: str) -> None:
        """Cancel: drop a queued job, or SIGTERM a running one's process group."""
        async with self._lock:
            await asyncio.to_thread(self._cancel_sync, tool_id)

    def _cancel_sync(self, tool_id: str) -> None:
        try:
            job_dir = self._job_dir(tool_id)
        except KeyError:
            return
        if not job_dir.exists() or (job_dir / "exit").exists():
            return
        (job_dir / "cancelled").touch()
        for marker in (self.root / "queue").glob(f"*_{tool_id}"):
            marker.unlink(missing_ok=True)
        if (job_dir / "started").exists():
            # a runner claimed the job: give it a moment to record its pid
            for _ in range(40):
                if (job_dir / "pid").exists() or (job_dir / "exit").exists():
                    break
                time.sleep(0.05)
        elif not (job_dir / "pid").exists():
            # not started: a runner that starts now sees the cancel and stops
            write_exit_file(job_dir / "exit", None, cancelled=True)
            return
        if (job_dir / "exit").exists():
            return
        if not self._runner_alive(job_dir):
            return
        pid = int((job_dir / "pid").read_text().split()[0])
        # the runner leads its own session: signal the whole group so the
        # task's own subprocesses stop too; the runner records the cancel
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)

    def render(self, spec: SubmitSpec) -> Rendering:
        """The argv a job runs (inside the exit-code wrapper)."""
        return Rendering(backend=self.name, argv=self.task_argv(spec))

    async def health(self) -> None:
        """The state directory must exist and be writable."""
        self._require_state_dir()
        if not os.access(self.root, os.W_OK):
            raise BackendUnavailable(f"local backend: state dir {self.root} is not writable")

    async def aclose(self) -> None:
        """Leave running jobs alone (they are detached); forget them, stop the fork server."""
        self._children.clear()
        if self._fork_server is not None:
            await asyncio.to_thread(self._fork_server.close)


def create(settings: JIDSettings) -> LocalBackend:
    """The backend registry's factory: a LocalBackend from the JID's settings."""
    return LocalBackend.from_config(LocalConfig.from_settings(settings))
