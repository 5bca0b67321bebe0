"""The ``firecrest`` backend's own settings: JID settings plus the FirecREST environment.

Credentials come from the environment only (never from a settings file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import SecretStr

from jid_service.backends.base import BackendConfig, BackendError

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings

ENV_CLIENT_ID = "FIRECREST_CLIENT_ID"
ENV_CLIENT_SECRET = "FIRECREST_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_TOKEN_URL = "AUTH_TOKEN_URL"  # noqa: S105 - a variable name, not a secret
ENV_FIRECREST_URL = "FIRECREST_URL"

DEFAULT_LAUNCHER = "lute-run-task"


class FirecrestConfigError(BackendError, ValueError):
    """The firecrest backend is not configured well enough to start."""


class FirecrestConfig(BackendConfig):
    """Everything the daemon's ``firecrest`` backend is configured with.

    The values are checked once more when the backend is built (see
    ``FirecrestBackend``), where each error names its setting.
    """

    url: str
    client_id: str
    client_secret: SecretStr
    token_url: str
    system: str
    work_dir: str
    launcher: str = DEFAULT_LAUNCHER

    @classmethod
    def from_settings(
        cls, settings: JIDSettings, env: Mapping[str, str] | None = None
    ) -> FirecrestConfig:
        """``firecrest_*`` settings and the credentials in ``env`` (default: the process's).

        Raises :class:`FirecrestConfigError` naming the first missing variable or setting.
        """
        env = os.environ if env is None else env
        url = _require(env, ENV_FIRECREST_URL)
        client_id = _require(env, ENV_CLIENT_ID)
        client_secret = _require(env, ENV_CLIENT_SECRET)
        token_url = _require(env, ENV_TOKEN_URL)
        if not settings.firecrest_system:
            raise FirecrestConfigError("the firecrest backend needs the setting firecrest_system")
        if not settings.firecrest_work_dir:
            raise FirecrestConfigError("the firecrest backend needs the setting firecrest_work_dir")
        return cls(
            url=url,
            client_id=client_id,
            client_secret=SecretStr(client_secret),
            token_url=token_url,
            system=settings.firecrest_system,
            work_dir=settings.firecrest_work_dir,
            launcher=settings.firecrest_launcher or DEFAULT_LAUNCHER,
        )


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise FirecrestConfigError(f"the firecrest backend needs the environment variable {name}")
    return value
