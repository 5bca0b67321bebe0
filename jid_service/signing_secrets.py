"""The secrets the JID signs and checks its own tokens with, from settings or a file.

A secret in an environment variable is visible to whoever can read the
daemon's environment, so a site can keep it in a file instead
(``auth_secret_file``, refused unless only its owner can read it). Several
secrets rotate a key: tokens are signed with the first and checked against
all, so tokens signed with a retired secret keep working until they expire.
"""

from __future__ import annotations

import stat
from pathlib import Path

from jid_service.settings import JIDSettings

MIN_SECRET_LENGTH = 32
"""Shortest secret accepted: HS256 keys shorter than the hash add no strength."""


class SecretError(ValueError):
    """The configured secrets cannot be used; the message says why."""


def read_secret_file(path: Path) -> list[str]:
    """The secrets in ``path``, one per line (the first signs); blank lines skipped.

    Refused when the file is readable or writable by its group or others.
    """
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"auth_secret_file {path} is accessible to its group or others "
                f"(mode {stat.S_IMODE(mode):04o}); make it 0600 or 0400"
            )
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SecretError(f"auth_secret_file {path}: {err.strerror or err}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def signing_secrets(settings: JIDSettings) -> list[str]:
    """Every secret the JID accepts, the one it signs with first.

    Order: ``auth_secret``, then the lines of ``auth_secret_file``, then
    ``auth_previous_secrets``. Raise :class:`SecretError` when there is none or
    one is shorter than :data:`MIN_SECRET_LENGTH`.
    """
    secrets: list[str] = []
    if settings.auth_secret:
        secrets.append(settings.auth_secret)
    if settings.auth_secret_file is not None:
        secrets.extend(read_secret_file(settings.auth_secret_file))
    secrets.extend(s for s in settings.auth_previous_secrets if s)
    if not secrets:
        raise SecretError(
            "JID settings: auth_secret is required (JID_AUTH_SECRET, or a file named by "
            "JID_AUTH_SECRET_FILE) - a random string of at least "
            f"{MIN_SECRET_LENGTH} characters, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`"
        )
    for position, secret in enumerate(secrets, 1):
        if len(secret) < MIN_SECRET_LENGTH:
            raise SecretError(
                f"JID settings: auth secret {position} is too short ({len(secret)} characters; "
                f"at least {MIN_SECRET_LENGTH} needed)"
            )
    return list(dict.fromkeys(secrets))
