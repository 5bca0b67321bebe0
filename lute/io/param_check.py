"""A config's Task sections checked against their parameter models, running nothing.

The one check used by ``lute-run-task --check`` and the launcher's pre-flight
(:mod:`lute.launch.configcheck`). For each Task section it reports, one
:class:`~lute.io.config.ConfigError` per problem (file, Task and key named):

* a key the model does not have, with a did-you-mean (nested sections too);
* a value of the wrong type or out of range, as pydantic words it;
* a section whose references do not resolve, or that names no known Task.

No results DB is opened: a parameter left to an earlier step's recorded
output (``recorded_output`` raising
:class:`~lute.io.models.base.UpstreamOutputMissingError`) is fine here, since that
output only exists once the earlier step has run. Only pydantic and the
parameter models are imported, never a Task's analysis code.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO, get_args

from pydantic import BaseModel, ValidationError

from lute.io.config import ConfigError, ConfigWarning, TaskConfig, load_config
from lute.io.models import model_for
from lute.io.models.base import UpstreamOutputMissingError
from lute.suggestions import did_you_mean


def _accepted(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Each name the model accepts (field names and aliases) -> its nested model, if any."""
    names: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        names[name] = nested
        if info.alias:
            names[info.alias] = nested
    return names


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (directly or as ``Model | None``), else None."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def unknown_keys(
    model: type[BaseModel], section: Mapping[str, Any], prefix: str = ""
) -> Iterator[tuple[str, str]]:
    """``(dotted key, did-you-mean)`` for each key of ``section`` that ``model`` refuses."""
    if model.model_config.get("extra") != "forbid":
        return
    accepted = _accepted(model)
    for key, value in section.items():
        key = str(key)
        if key not in accepted:
            yield prefix + key, did_you_mean(key, accepted)
            continue
        nested = accepted[key]
        if nested is not None and isinstance(value, Mapping):
            yield from unknown_keys(nested, value, prefix=f"{prefix}{key}.")


def _left_to_upstream(error: Mapping[str, Any]) -> bool:
    return isinstance((error.get("ctx") or {}).get("error"), UpstreamOutputMissingError)


def _unknown_task(config: TaskConfig, task: str) -> ConfigError:
    from lute.tasks.registry import task_names  # names only: no Task code is imported

    known = task_names()
    if task in known:
        return ConfigError("no parameter model for this Task", file=config.path, task=task)
    hint = did_you_mean(task, known) or f"; Tasks: {', '.join(known)}"
    return ConfigError(f"no Task of this name{hint}", file=config.path, task=task)


def section_problems(config: TaskConfig, task: str) -> list[ConfigError]:
    """Every problem of Task ``task``'s section (a missing section: the defaults)."""
    try:
        section = config.tasks.get(task, {})
    except ConfigError as exc:  # a reference of this section did not resolve
        return [exc]
    try:
        model = model_for(task)
    except KeyError:
        return [_unknown_task(config, task)]
    problems = [
        ConfigError(f"not a parameter of {task}{hint}", file=config.path, task=task, key=key)
        for key, hint in unknown_keys(model, section)
    ]
    context = {
        "header": config.header,
        "work_dir": config.work_dir,
        "db": None,
        "config_path": config.path,
    }
    try:
        model.model_validate(section, context=context)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if error["type"] == "extra_forbidden" or _left_to_upstream(error):
                continue  # unknown keys are reported above, with a did-you-mean
            key = ".".join(str(part) for part in error["loc"]) or None
            problems.append(ConfigError(error["msg"], file=config.path, task=task, key=key))
    return problems


def config_problems(config: TaskConfig, tasks: Iterable[str] | None = None) -> list[ConfigError]:
    """The problems of ``tasks``' sections (default: every Task section of the file)."""
    if tasks is None:
        errors = getattr(config.tasks, "errors", {})
        tasks = [*config.tasks.keys(), *errors]
    problems: list[ConfigError] = []
    for task in dict.fromkeys(tasks):
        problems.extend(section_problems(config, task))
    return problems


def file_problems(
    path: str | Path, tasks: Iterable[str] | None = None, environ: Mapping[str, str] | None = None
) -> list[ConfigError]:
    """The problems of a config file: one if it cannot be loaded, else its sections'."""
    try:
        with warnings.catch_warnings():
            # a section whose references fail is reported below, as a problem
            warnings.simplefilter("ignore", ConfigWarning)
            config = load_config(path, environ=environ)
    except ConfigError as exc:
        return [exc]
    return config_problems(config, tasks)


def report(path: str | Path, tasks: Iterable[str] | None, out: TextIO, err: TextIO) -> int:
    """``lute-run-task --check``: one line per problem on ``err`` (exit 2), or OK (exit 0)."""
    tasks = None if tasks is None else list(tasks)
    problems = file_problems(path, tasks)
    for problem in problems:
        err.write(f"lute-run-task: {problem}\n")
    if problems:
        err.write(f"lute-run-task: {len(problems)} problem(s); nothing was run\n")
        return 2
    checked = ", ".join(tasks) if tasks is not None else "every Task section"
    out.write(f"lute-run-task: {path}: OK ({checked})\n")
    return 0
