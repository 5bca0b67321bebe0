"""Where a path a caller names on the JID's host may lie: under one of the configured roots.

Configs, Kerberos caches and staged files are all named by callers and all
checked the same way: the path resolved (symlinks followed) must lie under a
root, itself resolved; a root that cannot be resolved admits nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def under_any(resolved: Path, roots: Iterable[Path]) -> bool:
    """True when the already resolved ``resolved`` lies under one of ``roots``."""
    for root in roots:
        try:
            if resolved.is_relative_to(root.resolve()):
                return True
        except (OSError, RuntimeError):  # a root with a symlink loop admits nothing
            continue
    return False
