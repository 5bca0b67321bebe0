"""The ``slurm`` backend's own settings, read from the JID's flat settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from jid_service.backends.base import BackendConfig

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings


class SlurmConfig(BackendConfig):
    """Everything the daemon's ``slurm`` backend is configured with."""

    launcher: Path = Field(description="submit_slurm.sh (setting `launcher`)")
    log_dir: Path = Field(description="LUTE_LOG_DIR of the launcher (setting `log_dir`)")
    unknown_grace: float = Field(default=600.0, ge=0)
    submit_timeout: float = Field(default=60.0, gt=0)
    query_timeout: float = Field(default=20.0, gt=0)
    env_passthrough: list[str] = Field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: JIDSettings) -> SlurmConfig:
        """The ``slurm_*`` settings (and ``launcher``, ``log_dir``, ``job_env_passthrough``)."""
        return cls(
            launcher=settings.launcher,
            log_dir=settings.effective_log_dir,
            unknown_grace=settings.slurm_unknown_grace,
            submit_timeout=settings.slurm_submit_timeout,
            query_timeout=settings.slurm_query_timeout,
            env_passthrough=settings.job_env_passthrough,
        )
