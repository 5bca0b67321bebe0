"""Check a task config before a workflow is triggered.

Checked cheaply and without running any Task code:

* the file parses as LUTE's two-document YAML and every substitution
  resolves (``lute.io.config.load_config``, with ``EXPERIMENT``/``RUN_NUM``
  of this launch, so the header may leave them to the environment);
* every managed task of the workflow has a section for its Task: DAGs name
  managed tasks (``Tester``) while the config has one section per Task
  (``Test``); ``lute.managed_tasks`` maps one to the other;
* each of those sections against its Task's model, by the check
  ``lute-run-task --check`` makes (:mod:`lute.io.param_check`): a misspelt
  key (with a did-you-mean), a wrong type or a value out of range fails here
  instead of failing its step mid-run. A parameter left to an earlier step's
  recorded output is accepted: that output does not exist before the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lute.io.config import TaskConfig


class ConfigCheckError(Exception):
    """The config cannot be used for this workflow (the launcher exits 2)."""

    code = 2


def task_of(managed_task: str) -> str:
    """The Task name a managed task runs (KeyError if the managed task is unknown)."""
    from lute.managed_tasks import get_managed_task

    return get_managed_task(managed_task).task_name


def unknown_managed_task_message(name: str) -> str:
    """The workflow names a managed task that does not exist: say so, with the closest."""
    from lute.managed_tasks import managed_task_names
    from lute.suggestions import did_you_mean

    known = managed_task_names()
    return f"the workflow uses an unknown managed task {name!r}" + (
        did_you_mean(name, known) or f"; managed tasks: {', '.join(known)}"
    )


def check_task_config(
    config_path: str | Path, managed_tasks: Sequence[str], env: Mapping[str, str]
) -> None:
    """Raise ConfigCheckError unless the config parses and covers every managed task."""
    from lute.io.config import ConfigError, load_config

    path = Path(config_path)
    if not path.is_file():
        raise ConfigCheckError(f"{path}: no such config file")
    try:
        config = load_config(path, environ=env)
    except ConfigError as exc:
        raise ConfigCheckError(str(exc)) from None
    missing = []
    checked: list[str] = []
    for name in managed_tasks:
        try:
            task = task_of(name)
        except KeyError:
            raise ConfigCheckError(unknown_managed_task_message(name)) from None
        if task not in config.tasks:
            missing.append(f"{task} (for {name})")
            continue
        try:
            config.tasks[task]  # a reference of a Task that will run must resolve
        except ConfigError as exc:
            raise ConfigCheckError(str(exc)) from None
        if task not in checked:
            checked.append(task)
    if missing:
        raise ConfigCheckError(
            f"{path}: no section for Task(s) {', '.join(missing)}; "
            f"the file has: {', '.join(config.tasks) or 'none'}"
        )
    check_parameters(config, checked)


def check_parameters(config: TaskConfig, tasks: Sequence[str]) -> None:
    """Raise ConfigCheckError with one line per problem of the Tasks' sections."""
    from lute.io.param_check import config_problems

    problems = config_problems(config, tasks)
    if problems:
        raise ConfigCheckError("\n".join(str(p) for p in problems))
