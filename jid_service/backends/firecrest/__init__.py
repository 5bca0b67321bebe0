"""The ``firecrest`` backend: managed tasks on a remote system through FirecREST v2.

The JID talks to FirecREST with pyfirecrest's v2 async client (the optional
``firecrest`` extra, imported only when this backend is built), authenticated
by OIDC client credentials against ``FIRECREST_URL``.

:mod:`.backend` holds :class:`FirecrestBackend` over :mod:`.transport` (HTTP,
tokens, retries), :mod:`.script` (the batch script) and :mod:`.decode`
(FirecREST's JSON); :mod:`.config` its settings. What it shares with the
``slurm`` backend is in :mod:`jid_service.backends.slurm_dialect`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jid_service.backends.firecrest.backend import VIEW_SIZE_LIMIT, FirecrestBackend
from jid_service.backends.firecrest.config import (
    DEFAULT_LAUNCHER,
    FirecrestConfig,
    FirecrestConfigError,
)
from jid_service.backends.firecrest.decode import job_state, view_text
from jid_service.backends.firecrest.transport import MIN_TOKEN_VALIDITY, TokenSource
from jid_service.backends.slurm_dialect import job_name

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings

__all__ = [
    "DEFAULT_LAUNCHER",
    "MIN_TOKEN_VALIDITY",
    "VIEW_SIZE_LIMIT",
    "FirecrestBackend",
    "FirecrestConfig",
    "FirecrestConfigError",
    "TokenSource",
    "create",
    "job_name",
    "job_state",
    "view_text",
]


def create(settings: JIDSettings) -> FirecrestBackend:
    """The backend registry's factory: a FirecrestBackend from JID settings and the environment."""
    return FirecrestBackend.from_settings(settings)
