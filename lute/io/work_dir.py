"""The work directory of a config: created on first use when that is safe."""

from __future__ import annotations

from pathlib import Path


class WorkDirError(Exception):
    """The work directory is missing and may not be created, or is not a directory."""


def ensure_work_dir(work_dir: Path, *, relative: bool) -> None:
    """Create a missing work dir whose parent exists (any missing parents if ``relative``).

    A relative work dir is anchored at the config file, so its missing parents
    (``../work_dirs/test`` on a fresh checkout) are created too; an absolute
    one only below an existing parent, so a misspelt path fails instead of
    growing a directory tree somewhere.
    """
    if work_dir.is_dir():
        return
    if work_dir.exists():
        raise WorkDirError(f"work_dir {work_dir} is not a directory")
    if not (relative or work_dir.parent.is_dir()):
        raise WorkDirError(
            f"work_dir {work_dir} does not exist, nor does its parent {work_dir.parent}: "
            "create it first"
        )
    try:
        work_dir.mkdir(parents=relative, exist_ok=True)
    except OSError as exc:
        raise WorkDirError(f"cannot create work_dir {work_dir}: {exc.strerror}") from None
