"""The launcher's user config: where Airflow and the JID are, and credentials.

``$LUTE_LAUNCH_CONFIG`` or ``~/.config/lute/launch.yaml``; top-level profiles
``default`` and ``test`` (``--test``), each with ``airflow_url``, ``username``,
``password`` (or ``token``), ``jid_url``, ``jid_token``, ``jid_ca_bundle`` (PEM
bundle of the CAs of an https JID's certificate), ``defs_store`` (where ``-W``
definitions go: ``files`` or ``airflow``), and for ``--admin``
``admin_username``/``admin_password`` (or ``admin_token``). The file holds secrets,
so it is refused unless only its owner can read it (mode 0600 or stricter).
Environment variables override single fields: ``LUTE_AIRFLOW_URL``,
``LUTE_AIRFLOW_USERNAME``, ``LUTE_AIRFLOW_PASSWORD``, ``LUTE_AIRFLOW_TOKEN``,
``LUTE_JID_URL``, ``LUTE_JID_TOKEN``, ``LUTE_JID_CA_BUNDLE``, ``LUTE_DEFS_STORE``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from lute.airflow.tls import check_ca_bundle

ENV_CONFIG = "LUTE_LAUNCH_CONFIG"
PROFILES = ("default", "test")
ENV_FIELDS = {
    "airflow_url": "LUTE_AIRFLOW_URL",
    "username": "LUTE_AIRFLOW_USERNAME",
    "password": "LUTE_AIRFLOW_PASSWORD",
    "token": "LUTE_AIRFLOW_TOKEN",
    "jid_url": "LUTE_JID_URL",
    "jid_token": "LUTE_JID_TOKEN",
    "jid_ca_bundle": "LUTE_JID_CA_BUNDLE",
    "defs_store": "LUTE_DEFS_STORE",
}


class LaunchConfigError(Exception):
    """The user config is missing, unreadable, too open or malformed."""


class Profile(BaseModel):
    """Where one Airflow instance and its JID are, and how to log in to them."""

    model_config = ConfigDict(extra="forbid")

    airflow_url: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    jid_url: str | None = None
    jid_token: str | None = None
    jid_ca_bundle: str | None = None
    defs_store: Literal["files", "airflow"] = "files"
    admin_username: str | None = None
    admin_password: str | None = None
    admin_token: str | None = None

    def __repr__(self) -> str:  # secrets stay out of tracebacks and logs
        return f"Profile(airflow_url={self.airflow_url!r}, jid_url={self.jid_url!r})"

    __str__ = __repr__

    @field_validator("jid_ca_bundle")
    @classmethod
    def _absolute_ca_bundle(cls, value: str | None) -> str | None:
        return check_ca_bundle(value, "jid_ca_bundle")


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """``$LUTE_LAUNCH_CONFIG`` if set, else ``~/.config/lute/launch.yaml``."""
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    return Path.home() / ".config" / "lute" / "launch.yaml"


def check_permissions(path: Path) -> None:
    """Refuse a config file that anyone but its owner may read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LaunchConfigError(
            f"{path}: mode {stat.S_IMODE(mode):04o} lets others read it; "
            f"it holds credentials: run `chmod 600 {path}`"
        )


def read_profile(
    profile: str = "default",
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Profile:
    """The named profile from the config file, with environment overrides applied.

    A missing file is fine when the environment supplies what is needed (the
    caller checks completeness); an existing file must pass
    :func:`check_permissions` and parse.
    """
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(ENV_CONFIG))
    path = path if path is not None else default_path(env)
    values: dict[str, object] = {}
    if path.exists():
        check_permissions(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LaunchConfigError(f"{path}: cannot read: {exc}") from None
        if not isinstance(data, dict):
            raise LaunchConfigError(f"{path}: expected a mapping of profiles")
        unknown = set(data) - set(PROFILES)
        if unknown:
            raise LaunchConfigError(
                f"{path}: unknown profile(s) {sorted(unknown)}; expected {list(PROFILES)}"
            )
        section = data.get(profile)
        if section is not None and not isinstance(section, dict):
            raise LaunchConfigError(f"{path}: profile {profile!r} must be a mapping")
        values.update(section or {})
    elif explicit:
        raise LaunchConfigError(f"{path}: no such file (from ${ENV_CONFIG})")
    for field, var in ENV_FIELDS.items():
        if env.get(var):
            values[field] = env[var]
    try:
        return Profile.model_validate(values)
    except ValidationError as exc:
        bad = ", ".join(
            ".".join(map(str, e["loc"]))
            + ("" if e["type"] == "extra_forbidden" else f" ({e['msg']})")
            for e in exc.errors()
        )
        raise LaunchConfigError(f"{path}: profile {profile!r}: bad key(s): {bad}") from None


def write_config(path: Path, profiles: Mapping[str, Profile]) -> None:
    """Write profiles to ``path`` with mode 0600 (created private, renamed in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(
            {name: prof.model_dump(exclude_none=True) for name, prof in profiles.items()},
            fh,
            sort_keys=False,
        )
    os.chmod(tmp, 0o600)
    tmp.replace(path)
