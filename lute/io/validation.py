"""Validate one Task's parameters from a loaded config.

Order of precedence, highest first: ``LUTE_<param>`` environment variables
(the process environment plus the managed task's own environment updates),
the config file, the model's defaults (some of which come from the results
DB). Errors become :class:`ConfigError` naming the file, Task and key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lute.io.config import ConfigError, TaskConfig
from lute.io.models import model_for

if TYPE_CHECKING:
    from lute.io.db import ResultsDB
    from lute.io.models.base import TaskParameters

ENV_PREFIX = "LUTE_"


def environment_overrides(field_names: list[str], environ: Mapping[str, str]) -> dict[str, Any]:
    """``LUTE_<field>`` values (case-insensitive) for the model's top-level fields.

    JSON objects and arrays are decoded so nested parameters can be replaced.
    """
    by_lower = {k.lower(): v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    overrides: dict[str, Any] = {}
    for name in field_names:
        raw = by_lower.get(f"{ENV_PREFIX}{name}".lower())
        if raw is None:
            continue
        value: Any = raw
        if raw.strip()[:1] in ("{", "["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        overrides[name] = value
    return overrides


def validate_parameters(
    config: TaskConfig,
    task: str,
    *,
    env_updates: Mapping[str, str] | None = None,
    db: ResultsDB | None = None,
    environ: Mapping[str, str] | None = None,
) -> TaskParameters:
    """The validated parameter model of ``task``. Raises ConfigError."""
    try:
        model = model_for(task)
    except KeyError:
        raise ConfigError("no parameter model for this Task", file=config.path, task=task) from None
    env = dict(os.environ if environ is None else environ)
    env.update(env_updates or {})
    values = dict(config.tasks.get(task, {}))
    values.update(environment_overrides(list(model.model_fields), env))
    context = {
        "header": config.header,
        "work_dir": config.work_dir,
        "db": db,
        "config_path": config.path,
    }
    try:
        return model.model_validate(values, context=context)
    except ValidationError as exc:
        raise _config_error(exc, config, task) from None


def _config_error(exc: ValidationError, config: TaskConfig, task: str) -> ConfigError:
    errors = exc.errors(include_url=False)
    keys = [".".join(str(p) for p in err["loc"]) or "<parameters>" for err in errors]
    messages = [f"{k}: {err['msg']}" for k, err in zip(keys, errors, strict=True)]
    key = keys[0] if len(keys) == 1 else ", ".join(dict.fromkeys(keys))
    message = errors[0]["msg"] if len(errors) == 1 else "; ".join(messages)
    return ConfigError(message, file=config.path, task=task, key=key)
