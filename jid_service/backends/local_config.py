"""The ``local`` backend's own settings, read from the JID's flat settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from jid_service.backends.base import BackendConfig

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings


class LocalConfig(BackendConfig):
    """Everything the daemon's ``local`` backend is configured with."""

    state_dir: Path
    command: list[str] = Field(description="argv prefix of a managed-task run")
    max_parallel: int = Field(default=16, ge=1)
    env_passthrough: list[str] = Field(default_factory=list)
    fork_server: bool = Field(
        default=True, description="start jobs of the default command through the fork server"
    )

    @classmethod
    def from_settings(cls, settings: JIDSettings) -> LocalConfig:
        """``state_dir``, ``local_command``, ``local_max_parallel``,
        ``local_fork_server`` and ``job_env_passthrough`` of the JID."""
        return cls(
            state_dir=settings.state_dir,
            command=settings.effective_local_command,
            max_parallel=settings.local_max_parallel,
            env_passthrough=settings.job_env_passthrough,
            fork_server=settings.local_fork_server,
        )
