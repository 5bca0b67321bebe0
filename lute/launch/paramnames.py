"""Parameter names of a Task section checked against the Task's model, values left alone.

Values are not validated before a run (some default to the results of earlier
steps, which do not exist yet), but the names a model accepts are known
without any result: a key the model does not have is a typo or a parameter of
another Task, and fails the pre-flight with a did-you-mean.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, get_args

from pydantic import BaseModel

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
    candidates = (annotation, *get_args(annotation))
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _forbids_extra(model: type[BaseModel]) -> bool:
    return model.model_config.get("extra") == "forbid"


def unknown_keys(
    model: type[BaseModel], section: Mapping[str, Any], prefix: str = ""
) -> Iterator[tuple[str, str]]:
    """``(dotted key, did-you-mean)`` for each key of ``section`` that ``model`` refuses."""
    if not _forbids_extra(model):
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
