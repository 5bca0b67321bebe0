"""JID settings: environment variables (prefix ``JID_``) over a YAML file.

The YAML file is ``$JID_SETTINGS_FILE`` or, when that is unset, ``config/jid.yaml``
in the repository. Precedence, highest first: explicit keyword arguments,
environment, YAML file, defaults. Relative paths in the YAML file resolve against
the file's directory; relative paths from the environment against the current
directory.
"""

from __future__ import annotations

import contextvars
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from jid_service.identity_provider import IdentityProviderConfig
from jid_service.slurm_options import DEFAULT_SLURM_OPTIONS

DEFAULT_LOCAL_COMMAND: tuple[str, ...] = (sys.executable, "-m", "lute.run_task")
"""The local backend's managed-task command unless ``local_command`` says otherwise."""

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The source tree this package lives in (the launcher and example configs sit there)."""

DEFAULT_SETTINGS_FILE = REPO_ROOT / "config" / "jid.yaml"

_PATH_FIELDS = ("db_url", "allowed_config_roots", "launcher", "state_dir", "log_dir",
                "firecrest_launcher", "auth_secret_file", "kerberos_cache_roots",
                "staging_roots")
_PATH_LIST_FIELDS = ("allowed_config_roots", "kerberos_cache_roots", "staging_roots")

_settings_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "jid_settings_file", default=None
)


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/lute-jid`` when set, else ``.dev/jid`` under the repository."""
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg:
        return Path(xdg) / "lute-jid"
    return REPO_ROOT / ".dev" / "jid"


def settings_file_path() -> Path | None:
    """The YAML settings file in effect, or None when there is none."""
    explicit = _settings_file.get()
    if explicit is not None:
        return explicit
    env = os.environ.get("JID_SETTINGS_FILE")
    if env:
        return Path(env)
    return DEFAULT_SETTINGS_FILE if DEFAULT_SETTINGS_FILE.is_file() else None


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML settings file; relative paths resolve against its directory."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = settings_file_path()
        if path is None:
            return {}
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as err:
            raise ValueError(f"cannot read JID settings file {path}: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"JID settings file {path} must hold a mapping")
        base = path.resolve().parent
        for key in _PATH_FIELDS:
            if key not in data or data[key] is None:
                continue
            if key == "db_url":
                data[key] = _resolve_sqlite_url(str(data[key]), base)
            elif key in _PATH_LIST_FIELDS:
                data[key] = [str(base / Path(p).expanduser()) for p in data[key]]
            else:
                data[key] = str(base / Path(str(data[key])).expanduser())
        return data


def _resolve_sqlite_url(url: str, base: Path) -> str:
    """Make a relative ``sqlite:///relative.db`` URL absolute against ``base``."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        return prefix + str(base / url[len(prefix):])
    return url


class JIDSettings(BaseSettings):
    """Everything the daemon reads at start-up.

    The names stay flat (``slurm_unknown_grace``, ``firecrest_system``...), as
    the environment and YAML file spell them; each backend reads the ones it
    needs into a typed config of its own (``LocalConfig``, ``SlurmConfig``,
    ``FirecrestConfig``, each with ``from_settings``).
    """

    model_config = SettingsConfigDict(env_prefix="JID_", extra="forbid")

    backend: Literal["local", "slurm", "firecrest"] = "local"
    db_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<state_dir>/jid.db"
    )
    auth_secret: str | None = Field(default=None, description="HS256 secret for tokens")
    auth_secret_file: Path | None = Field(
        default=None,
        description="file of HS256 secrets, one per line, the first signs (mode 0600 or 0400)",
    )
    auth_previous_secrets: list[str] = Field(
        default_factory=list,
        description="retired secrets whose tokens are still accepted (never used to sign)",
    )
    identity_provider: IdentityProviderConfig | None = Field(
        default=None, description="a site's token issuer (OIDC) whose tokens are accepted too"
    )
    run_token_max_ttl: float = Field(
        default=7 * 24 * 3600.0, gt=0,
        description="the longest lifetime of a run-scoped token (seconds)",
    )
    allowed_config_roots: list[Path] = Field(default_factory=lambda: [REPO_ROOT / "config"])
    launcher: Path = REPO_ROOT / "launch_scripts" / "submit_slurm.sh"
    allowed_launcher_locations: list[str] = Field(
        default_factory=list,
        description=(
            "install prefixes P for which an executable written exactly as "
            "P/launch_scripts/submit_slurm.sh is accepted (ARP sends the LUTE install "
            "path of the site); the JID always runs its own `launcher`"
        ),
    )
    slurm_allowed_options: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SLURM_OPTIONS),
        description="long names of the Slurm options callers may give (jid_service.slurm_options)",
    )
    slurm_option_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="a site's value shapes (full-match regex, ASCII) by option name",
    )
    kerberos_cache_roots: list[Path] = Field(
        default_factory=list,
        description="directories under which a Kerberos cache forwarded with -K may lie",
    )
    staging_roots: list[Path] = Field(
        default_factory=list,
        description=(
            "directories on the JID's host that a step's stage_in sources and stage_out "
            "targets must lie under (none: staging is refused)"
        ),
    )
    slurm_unknown_grace: float = Field(
        default=600.0, ge=0,
        description=(
            "seconds a job may be unknown to squeue and to an accounting source that "
            "answered before it is reported FAILED (raw status UNKNOWN)"
        ),
    )
    slurm_submit_timeout: float = Field(
        default=60.0, gt=0,
        description=(
            "seconds the launcher (sbatch) may take before it is killed and the "
            "controller counted as unavailable"
        ),
    )
    slurm_query_timeout: float = Field(
        default=20.0, gt=0,
        description="seconds squeue, sacct, scontrol or scancel may take, likewise",
    )
    job_env_passthrough: list[str] = Field(
        default_factory=list,
        description=(
            "names of the daemon's environment variables jobs receive besides the base "
            "set (PATH, HOME, LANG, LUTE_*...); JID_* names never pass"
        ),
    )
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    replica_name: str | None = Field(
        default=None, max_length=200,
        description="this replica's name in /healthz and the logs (default hostname:pid)",
    )
    local_max_parallel: int = Field(default=16, ge=1)
    local_fork_server: bool = Field(
        default=True,
        description="start local jobs of the default command by forking a pre-imported "
        "interpreter instead of starting two new ones",
    )
    local_command: list[str] | None = Field(
        default=None,
        description="argv prefix the local backend runs (default: this Python -m lute.run_task)",
    )
    state_dir: Path = Field(default_factory=default_state_dir)
    log_dir: Path | None = Field(
        default=None, description="Slurm job logs; default <state_dir>/logs"
    )
    log_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    kill_wait_seconds: float = Field(default=10.0, ge=0, le=60)
    firecrest_system: str | None = None
    firecrest_work_dir: str | None = None
    firecrest_launcher: str | None = None

    @field_validator("slurm_allowed_options")
    @classmethod
    def _strip_dashes(cls, value: list[str]) -> list[str]:
        return [opt.lstrip("-") for opt in value]

    @field_validator("slurm_option_patterns")
    @classmethod
    def _compile_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        checked = {}
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"slurm_option_patterns[{name!r}]: {err}") from None
            checked[name.lstrip("-")] = pattern
        return checked

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @property
    def effective_db_url(self) -> str:
        """The store URL: ``db_url`` or SQLite under ``state_dir``."""
        return self.db_url or f"sqlite:///{self.state_dir / 'jid.db'}"

    @property
    def effective_log_dir(self) -> Path:
        """Where Slurm job logs go."""
        return self.log_dir or self.state_dir / "logs"

    @property
    def effective_local_command(self) -> list[str]:
        """The argv prefix of a managed-task run for the local backend."""
        return list(self.local_command or DEFAULT_LOCAL_COMMAND)


def load_settings(settings_file: Path | str | None = None, **overrides: Any) -> JIDSettings:
    """Load settings from ``settings_file`` (or the default file), env and overrides."""
    token = _settings_file.set(Path(settings_file) if settings_file is not None else None)
    try:
        return JIDSettings(**overrides)
    finally:
        _settings_file.reset(token)
