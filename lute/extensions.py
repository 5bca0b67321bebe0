"""Tasks, parameter models and managed tasks registered by other packages (entry points).

A facility package adds to LUTE without editing it by declaring entry points
in three groups, each ``name = "module:attribute"`` like the built-in tables:

* ``lute.tasks``: Task name -> its ``Task`` class;
* ``lute.task_models``: Task name -> its parameter model (a ``TaskParameters``);
* ``lute.managed_tasks``: managed-task name -> its ``Executor``.

Listing names reads only the installed distributions' metadata (nothing is
imported), and is cached for :data:`CACHE_SECONDS` so a running JID sees a
package installed beside it within that time, without a restart. A name that
two packages (or a package and LUTE itself) register is an error naming both.
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass

TASKS_GROUP = "lute.tasks"
MODELS_GROUP = "lute.task_models"
MANAGED_TASKS_GROUP = "lute.managed_tasks"
BUILT_IN = "lute (built in)"
CACHE_SECONDS = 5.0
"""How long a listing of a group is reused before the metadata is read again."""


class ExtensionClashError(Exception):
    """Two packages register the same name in one group."""


@dataclass(frozen=True)
class Registration:
    """One name registered through an entry point."""

    name: str
    target: str
    """``module:attribute``"""
    package: str
    """The distribution that declared it."""


_cache: dict[tuple[str, ...], tuple[float, dict[str, list]]] = {}


def _entry_points_by_group() -> dict[str, list]:
    # imported here: lute-run-task's start-up need not pay for it before a lookup
    from importlib import metadata

    # One pass over every installed distribution for all groups: each
    # entry_points(group=...) call reads them all again (hundreds beside
    # Airflow), and a run looks in three groups.
    everything = metadata.entry_points()
    return {group: list(everything.select(group=group))
            for group in (TASKS_GROUP, MODELS_GROUP, MANAGED_TASKS_GROUP)}


def _read(group: str, entries: list) -> dict[str, Registration]:
    found: dict[str, Registration] = {}
    for entry in entries:
        package = entry.dist.name if entry.dist is not None else "(unknown distribution)"
        earlier = found.get(entry.name)
        if earlier is not None and earlier.package != package:
            raise ExtensionClashError(
                f"{group}: {entry.name!r} is registered by both {earlier.package} "
                f"and {package}"
            )
        found[entry.name] = Registration(entry.name, entry.value, package)
    return found


def registered(group: str) -> dict[str, Registration]:
    """The names other packages register in ``group`` (cached briefly)."""
    key = tuple(sys.path)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is None or now - hit[0] >= CACHE_SECONDS:
        hit = _cache[key] = (now, _entry_points_by_group())
    return _read(group, hit[1].get(group, []))


def forget() -> None:
    """Drop the cached listings (the next lookup reads the metadata again)."""
    _cache.clear()


def merged(group: str, built_in: dict[str, str]) -> dict[str, Registration]:
    """The built-in ``name -> module:attribute`` table with the group's registrations added."""
    table = {name: Registration(name, target, BUILT_IN) for name, target in built_in.items()}
    for name, registration in registered(group).items():
        if name in table:
            raise ExtensionClashError(
                f"{group}: {name!r} is registered by both {BUILT_IN} and {registration.package}"
            )
        table[name] = registration
    return table


def load(registration: Registration) -> object:
    """Import and return the object a registration names."""
    module_name, _, attr = registration.target.partition(":")
    value: object = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        value = getattr(value, part)
    return value
