"""The one interface every JID backend implements.

The JID validates a control document into a :class:`SubmitSpec` (argv checked,
paths resolved, Slurm options allow-listed) before any backend sees it, so a
backend never parses caller text itself.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from jid_service.backends.errors import (
    BackendError,
    BackendUnavailable,
    StagingFailed,
    SubmissionOutcomeUnknown,
    SubmissionRejected,
)
from jid_service.backends.job_cost import CostReading, JobCost
from jid_service.backends.staging_files import StageInItem, StageOutItem, copy_in, copy_out
from jid_service.log_text import LogChunk
from lute.job_status import JobStatus

if TYPE_CHECKING:
    from jid_service.models import StagedFile

__all__ = [
    "Backend", "BackendConfig", "BackendError", "BackendJobState", "BackendUnavailable",
    "CostReading", "JobCost", "Rendering", "StagingFailed", "SubmissionOutcomeUnknown",
    "SubmissionRejected", "SubmitSpec", "Submitted",
]


class BackendConfig(BaseModel):
    """A backend's own typed settings, read from the JID's flat ones.

    Each backend module defines one (``LocalConfig``, ``SlurmConfig``,
    ``FirecrestConfig``) with a ``from_settings(settings)`` classmethod; its
    ``create(settings)`` builds the backend from that config and nothing else.
    """

    model_config = ConfigDict(frozen=True)


class SubmitSpec(BaseModel):
    """A validated submission: everything a backend needs, nothing free-form."""

    model_config = ConfigDict(frozen=True)

    job_key: str = Field(description="the control document's _id")
    experiment: str
    run: str
    user: str
    taskname: str
    config_path: Path
    debug: bool = False
    slurm_args: tuple[str, ...] = ()
    kerberos_cache: str | None = Field(
        default=None, description="the job's KRB5CCNAME (FILE:<path>), forwarded with -K"
    )

    def run_task_args(self) -> list[str]:
        """``-c CONFIG -t NAME [--debug]``: the task's arguments to ``lute-run-task``.

        ``submit_slurm.sh`` takes the same ones first, so every backend builds
        its command line from this.
        """
        args = ["-c", str(self.config_path), "-t", self.taskname]
        if self.debug:
            args.append("--debug")
        return args


class Submitted(BaseModel):
    """What a backend returns from a submission."""

    tool_id: str
    log_path: str | None = None


class BackendJobState(BaseModel):
    """A job's state as the scheduler reports it, mapped to an ARP status."""

    tool_id: str
    status: JobStatus
    raw_status: str
    exit_code: int | None = None


class Rendering(BaseModel):
    """A dry run: the exact submission a backend would make."""

    backend: str
    argv: list[str] | None = None
    script: str | None = None


class Backend(abc.ABC):
    """Submit, poll, read logs of and cancel managed-task jobs."""

    name: str
    on_change: Callable[[], None] | None = None
    """Set by the JID; a backend that learns by itself that a job changed (the
    local backend sees its runners exit) calls it, from any thread, so that the
    poller ticks now instead of at its next interval."""

    @abc.abstractmethod
    async def submit(self, spec: SubmitSpec) -> Submitted:
        """Submit one job; raise SubmissionRejected or BackendUnavailable."""

    @abc.abstractmethod
    async def statuses(self, tool_ids: list[str]) -> dict[str, BackendJobState]:
        """States of many jobs in one scheduler call. Unknown ids are left out."""

    @abc.abstractmethod
    async def read_log(
        self, tool_id: str, log_path: str | None, offset: int, limit: int
    ) -> LogChunk:
        """Read up to ``limit`` bytes of the job's log from ``offset``."""

    @abc.abstractmethod
    async def cancel(self, tool_id: str) -> None:
        """Cancel the job; cancelling a finished job is not an error."""

    @abc.abstractmethod
    def render(self, spec: SubmitSpec) -> Rendering:
        """The exact argv or batch script ``submit`` would use, without submitting."""

    @abc.abstractmethod
    async def health(self) -> None:
        """Raise BackendUnavailable unless the scheduler answers."""

    async def find_submitted(self, job_key: str) -> Submitted | None:
        """The job that an interrupted submission of ``job_key`` left, or None if none.

        The JID asks this at start-up for every submission a previous daemon
        died in the middle of. Raise NotImplementedError when the backend
        cannot tell: the JID then fails the job rather than risk running it twice.
        """
        raise NotImplementedError

    def staging_work_dir(self, config_path: Path) -> str:
        """The directory a job's ``stage_in`` targets and ``stage_out`` globs are relative to.

        On a shared file system (``local``, ``slurm``) it is the directory of
        the job's config file, which LUTE resolves a relative ``work_dir`` against.
        """
        return str(config_path.parent)

    async def stage_in(self, work_dir: str, items: Sequence[StageInItem]) -> list[StagedFile]:
        """Copy each input into ``work_dir``; raise StagingFailed or BackendUnavailable.

        The default copies on the shared file system, each file through a
        temporary name and a rename.
        """

        return await asyncio.to_thread(copy_in, Path(work_dir), list(items))

    async def stage_out(self, work_dir: str, items: Sequence[StageOutItem]) -> list[StagedFile]:
        """Copy the files the globs match in ``work_dir`` to their targets (as stage_in)."""

        return await asyncio.to_thread(copy_out, Path(work_dir), list(items))

    async def tick(self) -> None:  # noqa: B027 - optional hook
        """Called by the JID's poller once per tick, before :meth:`statuses`.

        Backends with work of their own per tick (the ``local`` backend starts
        queued jobs here when a slot is free) override it.
        """

    async def costs(self, tool_ids: Sequence[str]) -> dict[str, CostReading]:
        """What each of these finished jobs cost, as far as the scheduler tells.

        The JID's poller asks this, in one call per tick, for the jobs that
        finished since (again at later ticks for a reading that is not
        ``settled`` yet, for a bounded time). Jobs the backend knows nothing
        of are left out. The default knows nothing.
        """
        return {}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients and background work."""

