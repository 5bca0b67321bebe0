"""The ``slurm`` backend: managed tasks as Slurm jobs submitted from this host.

:mod:`.backend` holds :class:`SlurmBackend` over :mod:`.commands` (the
subprocess runner) and :mod:`.parsers` (what squeue, sacct, scontrol and
sbatch print); :mod:`.config` its settings. What it shares with the
``firecrest`` backend is in :mod:`jid_service.backends.slurm_dialect`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jid_service.backends.slurm.backend import SlurmBackend
from jid_service.backends.slurm.commands import CommandResult, is_unavailable_message
from jid_service.backends.slurm.config import SlurmConfig
from jid_service.backends.slurm.parsers import (
    SQUEUE_FORMAT,
    parse_sacct,
    parse_scontrol_stdout,
    parse_squeue,
    parse_squeue_comments,
    parse_submitted_job_id,
    wait_status_exit_code,
)
from jid_service.backends.slurm_dialect import job_tag

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings

__all__ = [
    "SQUEUE_FORMAT",
    "CommandResult",
    "SlurmBackend",
    "SlurmConfig",
    "create",
    "is_unavailable_message",
    "job_tag",
    "parse_sacct",
    "parse_scontrol_stdout",
    "parse_squeue",
    "parse_squeue_comments",
    "parse_submitted_job_id",
    "wait_status_exit_code",
]


def create(settings: JIDSettings) -> SlurmBackend:
    """The backend registry's factory: a SlurmBackend from the JID's settings."""
    return SlurmBackend.from_config(SlurmConfig.from_settings(settings))
