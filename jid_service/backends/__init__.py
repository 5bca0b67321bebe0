"""JID backends, selected by name; each module is imported only when chosen.

Every backend module defines ``create(settings: JIDSettings) -> Backend``,
which reads the settings it needs into a typed config of its own
(``LocalConfig``, ``SlurmConfig``, ``FirecrestConfig``) and builds the backend
from it. Importing only the chosen module keeps pyfirecrest out of a daemon
that does not use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from jid_service.backends.base import Backend

if TYPE_CHECKING:
    from jid_service.settings import JIDSettings

BACKEND_MODULES = {
    "local": "jid_service.backends.local",
    "slurm": "jid_service.backends.slurm",
    "firecrest": "jid_service.backends.firecrest",
}


def create_backend(settings: JIDSettings) -> Backend:
    """The backend ``settings.backend`` names, configured from ``settings``."""
    try:
        module_name = BACKEND_MODULES[settings.backend]
    except KeyError:
        raise ValueError(f"unknown JID backend {settings.backend!r}") from None
    create: Callable[[JIDSettings], Backend] = importlib.import_module(module_name).create
    return create(settings)
