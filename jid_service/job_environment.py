"""The environment a job starts with: built by allow-list, never copied from the daemon.

The JID's own environment holds its signing secret, its database URL and
whatever its service manager set; a job is code chosen by a caller, so none of
that may reach it. Every backend builds a job's environment here: a small base
a program needs to run at all, the variables a site chose to pass through, and
the job's own variables. ``JID_*`` names never pass, whatever a site lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

BASE_VARIABLES: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE",
    "TZ", "TMPDIR", "TERM",
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
