"""What ``lute-run-task --list`` shows: every managed task, its Task and where it comes from.

Built-in managed tasks and those of installed packages (entry-point group
``lute.managed_tasks``) alike. Listing binds each name to its Executor, so a
package's managed-task module is imported (never its Task's analysis code);
one that fails to import is shown with its error instead of ending the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from lute.extensions import BUILT_IN


@dataclass(frozen=True)
class CatalogEntry:
    """One managed task as the listing shows it."""

    managed_task: str
    task: str
    """The Task it runs, or why that could not be found out."""
    package: str
    """The distribution that registers the managed task."""
    has_model: bool
    """Whether the Task has a parameter model (a config section can be checked)."""


def _distribution_of_lute() -> str:
    from importlib import metadata

    # the distribution this module was installed with, by the import name "lute"
    names = metadata.packages_distributions().get("lute", [])
    return names[0] if names else "lute"


def entries() -> list[CatalogEntry]:
    """Every managed task, sorted by name."""
    from lute.io.models import model_task_names
    from lute.managed_tasks import get_managed_task, registrations

    with_model = set(model_task_names())
    built_in = f"{_distribution_of_lute()} (built in)"
    found = []
    for name, registration in sorted(registrations().items()):
        package = built_in if registration.package == BUILT_IN else registration.package
        try:
            task = get_managed_task(name).task_name
        except Exception as exc:  # one broken package must not hide the rest
            found.append(CatalogEntry(name, f"(cannot load: {exc})", package, False))
            continue
        found.append(CatalogEntry(name, task, package, task in with_model))
    return found


def print_catalog(stream: TextIO) -> None:
    """Write the managed tasks as a table to ``stream``."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Managed tasks", title_justify="left")
    table.add_column("managed task (-t)", style="bold")
    table.add_column("Task (config section)")
    table.add_column("package")
    table.add_column("parameter model")
    for entry in entries():
        table.add_row(
            entry.managed_task, entry.task, entry.package, "yes" if entry.has_model else "no"
        )
    # wide enough that a piped listing keeps one line per managed task
    Console(file=stream, width=max(100, Console(file=stream).width)).print(table)
