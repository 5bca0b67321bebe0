"""What a job starts with: an environment built by allow-list, and the daemon's file modes.

The JID's own environment holds its signing secret, its database URL and
whatever its service manager set; a job is code chosen by a caller, so none of
that may reach it. Every backend builds a job's environment here: a small base
a program needs to run at all, the variables a site chose to pass through, and
the job's own variables. ``JID_*`` names never pass, whatever a site lists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

BASE_VARIABLES: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE",
    "TZ", "TMPDIR", "TERM", "PYTHONPATH",
)
"""Passed from the daemon's environment to every job when set: what a program needs to run."""

BASE_PREFIXES: tuple[str, ...] = ("LUTE_",)
"""Name prefixes passed to every job: the batch-node side's own settings (``LUTE_PYTHON``...)."""

SCHEDULER_PREFIXES: tuple[str, ...] = ("SLURM_", "SBATCH_")
"""Prefixes a Slurm client needs (``SLURM_CONF``); passed to the ``sbatch`` process only."""

FORBIDDEN_PREFIX = "JID_"
"""The daemon's own settings (its secret and database URL among them): never passed."""


def is_passable(name: str) -> bool:
    """False for a name no job may ever receive (the daemon's own ``JID_*`` settings)."""
    return not name.upper().startswith(FORBIDDEN_PREFIX)


def job_environment(
    source: Mapping[str, str],
    passthrough: Iterable[str] = (),
    job_variables: Mapping[str, str] | None = None,
    prefixes: Iterable[str] = (),
) -> dict[str, str]:
    """The environment of a job started from a daemon whose environment is ``source``.

    Takes from ``source`` the :data:`BASE_VARIABLES`, the names in
    ``passthrough`` (a site's setting) and the names starting with one of
    :data:`BASE_PREFIXES` or ``prefixes``; then sets ``job_variables`` (the
    job's own: ``EXPERIMENT``, ``RUN_NUM``, ``KRB5CCNAME``...). A ``JID_*`` name
    is dropped wherever it comes from.
    """
    wanted = set(BASE_VARIABLES) | set(passthrough)
    starts = (*BASE_PREFIXES, *prefixes)
    env = {
        name: value
        for name, value in source.items()
        if (name in wanted or name.startswith(starts)) and is_passable(name)
    }
    for name, value in (job_variables or {}).items():
        if is_passable(name):
            env[name] = value
    return env


PRIVATE_UMASK = 0o077
"""The daemon's own files (store, state dir, specs, logs) are its account's alone."""

_job_umask: int | None = None


def make_own_files_private() -> None:
    """Create every file of the daemon owner-only from now on (umask 077).

    The umask the daemon was started with is kept for its jobs (see
    :func:`job_umask`): their outputs belong to the experiment's shared
    directories, where the site's usual permissions apply.
    """
    global _job_umask
    previous = os.umask(PRIVATE_UMASK)
    if _job_umask is None:
        _job_umask = previous


def job_umask() -> int:
    """The umask jobs start with: the daemon's original one."""
    if _job_umask is not None:
        return _job_umask
    current = os.umask(0)
    os.umask(current)
    return current


def private_directory(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it owner-only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
