"""The ``slurm`` backend: submit through ``submit_slurm.sh``, poll with one ``squeue``.

Polling (:meth:`SlurmBackend.statuses`) costs one ``squeue -t all -j ids`` per
call, plus at most one fallback process for ids squeue no longer lists (jobs
that ended more than ``MinJobAge`` seconds ago): ``sacct`` when accounting
(slurmdbd) is on, ``sacct -c`` (the jobcomp/filetxt log) otherwise. Which of the
two works is learnt once and remembered, so a tick never runs both.

Measured on Slurm 22.05: ``squeue -j a,b`` with several ids lists the known ones
and ignores the rest (rc 0), but ``squeue -j a`` with one unknown id fails with
"Invalid job id specified" (rc 1): both mean "not listed" here, no retry needed.

Every job carries ``--comment=jid:<_id>``; :meth:`SlurmBackend.submit` looks for
it before submitting, so one ``_id`` is never queued twice (see ``submit``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from jid_service.backends.base import (
    Backend,
    BackendError,
    BackendJobState,
    BackendUnavailable,
    Rendering,
    SubmissionRejected,
    SubmitSpec,
    Submitted,
)
from jid_service.backends.job_cost import CostReading
from jid_service.backends.slurm.accounting import SACCT_COST_ENV, SACCT_COST_FORMAT, parse_costs
from jid_service.backends.slurm.commands import CommandResult, is_unavailable_message, run_command
from jid_service.backends.slurm.config import SlurmConfig
from jid_service.backends.slurm.parsers import (
    JOB_ID,
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    job_id_sort_key,
    parse_sacct,
    parse_scontrol_stdout,
    parse_squeue,
    parse_squeue_comments,
    parse_submitted_job_id,
)
from jid_service.backends.slurm_dialect import job_tag, log_glob
from jid_service.job_environment import (
    SCHEDULER_PREFIXES,
    job_environment,
    job_umask,
    private_directory,
)
from jid_service.log_text import LogChunk, read_log_chunk
from lute.job_status import JobStatus

log = logging.getLogger(__name__)

FallbackMode = Literal["auto", "sacct", "jobcomp", "none"]

# stderr of sbatch when the controller answered and refused this job
_REJECTED_MARKERS = ("batch job submission failed", "sbatch: error:", "error:")
_INVALID_JOB_ID = "invalid job id specified"
_ACCOUNTING_DISABLED = "accounting storage is disabled"
_ALREADY_ENDED = ("already completing or completed", "job/step already", _INVALID_JOB_ID)


class SlurmBackend(Backend):
    """Run managed tasks as Slurm jobs on the cluster this host submits to.

    Args:
        launcher: path of ``submit_slurm.sh``.
        log_dir: the jobs' log directory (``LUTE_LOG_DIR`` of the launcher).
        fallback: how to ask about jobs ``squeue`` forgot: ``sacct`` (slurmdbd),
            ``jobcomp`` (``sacct -c``), ``none``, or ``auto`` (try ``sacct``;
            switch to ``jobcomp`` for good if accounting is disabled).
        submit_timeout / query_timeout: seconds before a launcher or query
            process is killed and the controller counted as unavailable. Slurm
            clients give up after MessageTimeout (10 s by default) themselves.
        env: extra environment for every command (e.g. ``SLURM_CONF``).
        retry_after: the Retry-After hint of :class:`BackendUnavailable`.
        unknown_grace: seconds a job may stay unknown to ``squeue`` and to a
            fallback that answered before it is reported FAILED (raw status
            ``UNKNOWN``) instead of waiting for ever.
    """

    name = "slurm"

    @classmethod
    def from_config(cls, config: SlurmConfig) -> SlurmBackend:
        """The backend the daemon runs, as its settings describe it."""
        return cls(
            config.launcher,
            config.log_dir,
            submit_timeout=config.submit_timeout,
            query_timeout=config.query_timeout,
            unknown_grace=config.unknown_grace,
            env_passthrough=config.env_passthrough,
        )

    def __init__(
        self,
        launcher: Path | str,
        log_dir: Path | str,
        *,
        fallback: FallbackMode = "auto",
        submit_timeout: float = 60.0,
        query_timeout: float = 20.0,
        env: Mapping[str, str] | None = None,
        retry_after: float = 10.0,
        unknown_grace: float = 600.0,
        env_passthrough: Sequence[str] = (),
    ) -> None:
        self.launcher = Path(launcher)
        self.log_dir = Path(log_dir)
        self.fallback: FallbackMode = fallback
        self.submit_timeout = submit_timeout
        self.query_timeout = query_timeout
        self.extra_env = dict(env or {})
        self.env_passthrough = list(env_passthrough)
        self.retry_after = retry_after
        self.unknown_grace = unknown_grace
        self._unknown_since: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        """How many processes of each command this backend ran (for metrics and tests)."""

    def _env(self) -> dict[str, str]:
        # sbatch exports its own environment into the job: give it only what a
        # job may see (plus what the Slurm client itself reads). The daemon's
        # files are private (umask 077); its jobs get the site's usual umask,
        # which Slurm takes from SLURM_UMASK.
        return job_environment(
            os.environ, self.env_passthrough,
            {"SLURM_UMASK": f"{job_umask():04o}", **self.extra_env,
             "LUTE_LOG_DIR": str(self.log_dir)},
            prefixes=SCHEDULER_PREFIXES,
        )

    async def _run(self, argv: Sequence[str], timeout: float,
                   env: Mapping[str, str] | None = None) -> CommandResult:
        """Run one command (``env`` added to its environment), counted in :attr:`calls`."""
        name = Path(argv[0]).name
        self.calls[name] = self.calls.get(name, 0) + 1
        return await run_command(
            argv,
            timeout,
            env={**self._env(), **(env or {})},
            cwd=self.log_dir if self.log_dir.is_dir() else None,
            retry_after=self.retry_after,
        )

    def _unavailable(self, result: CommandResult) -> BackendUnavailable:
        return BackendUnavailable(
            f"Slurm controller unavailable: {result.message}", retry_after=self.retry_after
        )

    def argv(self, spec: SubmitSpec) -> list[str]:
        """The launcher argv for ``spec`` (what :meth:`render` shows and :meth:`submit` runs)."""
        argv = [str(self.launcher), *spec.run_task_args()]
        argv += ["-e", spec.experiment, "-r", spec.run]
        if spec.kerberos_cache is not None:
            argv += ["-K", spec.kerberos_cache]  # submit_slurm.sh exports it as KRB5CCNAME
        argv += list(spec.slurm_args)
        argv.append(f"--comment={job_tag(spec.job_key)}")
        return argv

    def render(self, spec: SubmitSpec) -> Rendering:
        """The exact launcher argv, with ``LUTE_LOG_DIR`` as the script would get it."""
        return Rendering(backend=self.name, argv=self.argv(spec))

    async def submit(self, spec: SubmitSpec) -> Submitted:
        """Run the launcher unless Slurm already lists a job for this key; find its log path.

        The look-up first (one ``squeue --me``) makes a repeated submission of
        one ``_id`` return the job already queued: a submission whose answer
        was lost (sbatch timed out against a frozen controller that queued the
        job when it woke up; a daemon killed between sbatch and recording the
        id) is not submitted twice, even by a restarted daemon.
        """
        tag = job_tag(spec.job_key)
        found = await self._find_tagged(tag)
        if found is not None:
            log.info("job %s was already submitted as %s; not submitting again", tag, found)
            return Submitted(tool_id=found, log_path=await self._log_path(found))
        private_directory(self.log_dir)
        result = await self._run(self.argv(spec), self.submit_timeout)
        if result.returncode != 0:
            lowered = result.message.lower()
            if is_unavailable_message(lowered):
                raise self._unavailable(result)
            if any(m in lowered for m in _REJECTED_MARKERS):
                raise SubmissionRejected(f"sbatch refused the job: {result.message}")
            raise BackendError(
                f"{self.launcher.name} failed (exit {result.returncode}): {result.message}"
            )
        job_id = parse_submitted_job_id(result.stdout)
        if job_id is None:
            raise BackendError(
                f"{self.launcher.name} printed no job id: {result.stdout.strip()[-500:]!r}"
            )
        return Submitted(tool_id=job_id, log_path=await self._log_path(job_id))

    async def find_submitted(self, job_key: str) -> Submitted | None:
        """The job Slurm still lists as submitted for ``job_key`` (by its comment), if any.

        For recovery: a daemon that died between sbatch and recording the job
        id can look the job up instead of submitting it again or failing it.
        """
        found = await self._find_tagged(job_tag(job_key))
        if found is None:
            return None
        return Submitted(tool_id=found, log_path=await self._log_path(found))

    async def _find_tagged(self, tag: str) -> str | None:
        """The id of a job carrying ``--comment=tag`` that Slurm still lists, if any."""
        result = await self._run(
            # only this user's jobs: the whole queue of a big site is costly to list
            ["squeue", "--me", "-h", "-t", "all", "-O", SQUEUE_FORMAT], self.query_timeout
        )
        if result.returncode != 0:
            if is_unavailable_message(result.message):
                raise self._unavailable(result)
            raise BackendError(f"squeue failed: {result.message}")
        matches = [jid for jid, comment in parse_squeue_comments(result.stdout).items()
                   if comment == tag]
        return max(matches, key=int) if matches else None

    async def _log_path(self, job_id: str) -> str | None:
        """Where the job writes its log: scontrol's StdOut, else the file found in log_dir."""
        try:
            result = await self._run(["scontrol", "show", "job", "-o", job_id], self.query_timeout)
        except BackendUnavailable:
            result = None
        if result is not None and result.returncode == 0:
            path = parse_scontrol_stdout(result.stdout)
            if path is not None:
                return path.replace("%j", job_id).replace("%J", job_id)
        found = self._glob_log(job_id)
        return str(found) if found is not None else None

    def _glob_log(self, job_id: str) -> Path | None:
        # submit_slurm.sh names logs as slurm_dialect.log_path_for does
        matches = sorted(self.log_dir.glob(log_glob(job_id)))
        return matches[-1] if matches else None

    async def statuses(self, tool_ids: list[str]) -> dict[str, BackendJobState]:
        """One ``squeue`` for all ids, plus at most one fallback for ids it no longer lists."""
        ids = sorted({t for t in tool_ids if JOB_ID.fullmatch(t)}, key=job_id_sort_key)
        if not ids:
            return {}
        result = await self._run(
            ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-O", SQUEUE_FORMAT],
            self.query_timeout,
        )
        if result.returncode != 0 and _INVALID_JOB_ID not in result.message.lower():
            if is_unavailable_message(result.message):
                raise self._unavailable(result)
            raise BackendError(f"squeue failed: {result.message}")
        states = parse_squeue(result.stdout if result.returncode == 0 else "", ids)
        missing = [i for i in ids if i not in states]
        answered = True
        if missing:
            found, answered = await self._forgotten(missing)
            states.update(found)
        self._expire_unknown(ids, states, answered)
        return states

    def _expire_unknown(self, ids: list[str], states: dict[str, BackendJobState],
                        answered: bool) -> None:
        """Report FAILED the jobs no source has known for ``unknown_grace`` seconds.

        A tick counts only when every source answered: an unreachable
        accounting source says nothing about a job.
        """
        now = time.monotonic()
        since = {i: t for i, t in self._unknown_since.items() if i in ids and i not in states}
        if answered:
            for job_id in ids:
                if job_id not in states:
                    since.setdefault(job_id, now)
        self._unknown_since = since
        for job_id, first in since.items():
            if now - first >= self.unknown_grace:
                log.warning("job %s unknown to Slurm for %.0f s: reported FAILED",
                            job_id, now - first)
                states[job_id] = BackendJobState(tool_id=job_id, status=JobStatus.FAILED,
                                                 raw_status="UNKNOWN")

    async def _forgotten(self, ids: list[str]) -> tuple[dict[str, BackendJobState], bool]:
        """States of jobs ``squeue`` no longer lists, from one ``sacct`` process (or none).

        Never raises for an unreachable accounting source: the ids just stay
        unknown this tick. The flag says whether the answer is conclusive (no
        source failed).
        """
        mode = self.fallback
        if mode == "none" or not ids:
            return {}, True
        argv = ["sacct", "-n", "-P", "-X", "-j", ",".join(ids), f"--format={SACCT_FORMAT}"]
        if mode == "jobcomp":
            # jobcomp/filetxt knows no -X, and JobIDRaw is JobID there
            argv = ["sacct", "-c", "-n", "-P", "-j", ",".join(ids), "--format=JobID,State,ExitCode"]
        try:
            result = await self._run(argv, self.query_timeout)
        except BackendUnavailable as exc:
            log.warning("sacct fallback: %s", exc)
            return {}, False
        except BackendError as exc:  # no sacct on this host: stop asking
            log.warning("sacct fallback disabled: %s", exc)
            self.fallback = "none"
            return {}, False
        if _ACCOUNTING_DISABLED in result.message.lower():
            if mode == "auto":
                log.info("Slurm accounting is disabled: asking the jobcomp log from now on")
                self.fallback = "jobcomp"
            return {}, False
        if result.returncode != 0:
            log.warning("sacct fallback failed: %s", result.message)
            return {}, False
        if mode == "auto":
            self.fallback = "sacct"
        return parse_sacct(result.stdout, ids), True

    async def costs(self, tool_ids: Sequence[str]) -> dict[str, CostReading]:
        """What the jobs cost, from one ``sacct`` with their steps (see :mod:`.accounting`).

        Without accounting (the jobcomp log, or no sacct) nothing is known.
        """
        ids = sorted({t for t in tool_ids if JOB_ID.fullmatch(t)}, key=job_id_sort_key)
        if not ids or self.fallback in ("jobcomp", "none"):
            return {}
        argv = ["sacct", "-n", "-P", "-j", ",".join(ids), f"--format={SACCT_COST_FORMAT}"]
        result = await self._run(argv, self.query_timeout, SACCT_COST_ENV)
        if result.returncode != 0 or _ACCOUNTING_DISABLED in result.message.lower():
            if is_unavailable_message(result.message):
                raise self._unavailable(result)
            log.info("sacct knows no costs: %s", result.message)
            return {}
        return parse_costs(result.stdout, ids)

    async def read_log(
        self, tool_id: str, log_path: str | None, offset: int, limit: int
    ) -> LogChunk:
        """Read the job's output file from ``offset`` (empty until the job starts)."""
        path = Path(log_path) if log_path else self._glob_log(tool_id)
        if path is None:
            return LogChunk(text="", offset=max(offset, 0), next_offset=max(offset, 0))
        return await asyncio.to_thread(read_log_chunk, path, offset, limit)

    async def cancel(self, tool_id: str) -> None:
        """``scancel ID``; a job that already ended (or that Slurm forgot) is not an error."""
        if not JOB_ID.fullmatch(tool_id):
            raise BackendError(f"not a Slurm job id: {tool_id!r}")
        result = await self._run(["scancel", tool_id], self.query_timeout)
        message = result.message.lower()
        if result.returncode == 0 and not message:
            return
        if any(m in message for m in _ALREADY_ENDED):
            return
        if is_unavailable_message(message):
            raise self._unavailable(result)
        if result.returncode != 0:
            raise BackendError(f"scancel {tool_id} failed: {result.message}")

    async def health(self) -> None:
        """``scontrol ping``: BackendUnavailable unless the controller says it is UP."""
        result = await self._run(["scontrol", "ping"], min(self.query_timeout, 10.0))
        if result.returncode != 0 or "is UP" not in result.stdout:
            raise self._unavailable(result)
