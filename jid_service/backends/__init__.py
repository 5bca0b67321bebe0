"""JID backends, selected by name; each module is imported only when chosen.

A backend module may define ``create(settings) -> Backend``; the registry uses
it when present (so pyfirecrest is imported only for ``firecrest``).
"""

from __future__ import annotations

import importlib
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
    module = importlib.import_module(module_name)
    factory = getattr(module, "create", None)
    if factory is not None:
        return factory(settings)
    if settings.backend == "local":
        return module.LocalBackend(
            settings.state_dir,
            settings.effective_local_command,
            max_parallel=settings.local_max_parallel,
        )
    if settings.backend == "slurm":
        return module.SlurmBackend(settings.launcher, settings.effective_log_dir,
                                   unknown_grace=settings.slurm_unknown_grace)
    return module.FirecrestBackend.from_settings(settings)
