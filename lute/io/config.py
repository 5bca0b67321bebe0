"""Task configuration files: two YAML documents, a header and Task parameters.

Substitutions, resolved before validation (LUTE-compatible; a reference that
cannot be resolved is an error naming the file, Task and key where it matters):

* ``{{ $NAME }}``: the environment variable NAME;
* ``{{ key }}``: a header key (``experiment``, ``run``, ...), else a parameter
  of the same Task (dotted paths allowed);
* ``{{ Task.a.b }}``: parameter ``a.b`` of another Task in the same file;
* an optional format spec after a colon: ``{{ run:04d }}``.

A string that is exactly one reference keeps the referenced value's type;
otherwise the reference is formatted into the string. Lists and nested
mappings are walked.

Where an unresolved reference is an error, as LUTE would have it run:

* ``{{ $RUN }}`` with ``RUN`` unset takes the run from ``$RUN_NUM`` (the ARP
  sets ``RUN_NUM=<run>_<time>``, never ``RUN``);
* in the header's ``experiment`` or ``run``, it is a warning
  (:class:`ConfigWarning`) and the key falls back to ``$EXPERIMENT`` /
  ``$RUN_NUM`` as if it were not set; elsewhere in the header, an error;
* in a Task section, it is a warning when the file is loaded and an error
  when that Task's parameters are read (``config.tasks[name]``): a Task that
  is not run, and whose parameters no run Task refers to, fails nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lute.io.work_dir import WorkDirError, ensure_work_dir

_REF = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_NUMERIC_SPEC = re.compile(r"[bcdoxXn]$")
_FLOAT_SPEC = re.compile(r"[eEfFgG%]$")
HEADER_KEY = "<header>"


class ConfigError(Exception):
    """A config problem, reported with the file, the Task and the key."""

    def __init__(
        self, message: str, *, file: Path | str, task: str | None = None, key: str | None = None
    ):
        self.message = message
        self.file = str(file)
        self.task = task
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.file]
        if self.task == HEADER_KEY:
            where.append("header")
        elif self.task:
            where.append(f"Task {self.task}")
        if self.key:
            where.append(f"key {self.key}")
        return f"{': '.join(where)}: {self.message}"


class ConfigWarning(UserWarning):
    """A reference left unresolved where the file can still be used."""


_ENV_FALLBACKS = {"RUN": "RUN_NUM"}
"""``$RUN`` unset: the run is the part of ``$RUN_NUM`` before ``_`` (the ARP's form)."""

_HEADER_ENV_KEYS = {"experiment": "$EXPERIMENT", "run": "$RUN_NUM"}


class TaskSections(dict[str, dict[str, Any]]):
    """Every Task's substituted parameters; a Task whose references failed raises on access.

    ``name in sections`` is true for every Task of the file; reading an
    unresolved Task's parameters (``sections[name]``, ``sections.get(name)``)
    raises its :class:`ConfigError`.
    """

    def __init__(self, resolved: dict[str, dict[str, Any]], errors: dict[str, ConfigError]):
        super().__init__(resolved)
        self.errors = errors

    def __contains__(self, name: object) -> bool:
        return name in self.errors or super().__contains__(name)

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name in self.errors:
            raise self.errors[name]
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The Task's parameters, ``default`` if the file has none; raises if unresolved."""
        if name in self.errors:
            raise self.errors[name]
        return super().get(name, default)


class Header(BaseModel):
    """The first YAML document, after substitution and environment fallbacks."""

    model_config = ConfigDict(extra="forbid")

    title: str = "LUTE Task Configuration"
    experiment: str = Field(min_length=1)
    run: str = Field(min_length=1)
    date: str | None = None
    lute_version: str | None = None
    task_timeout: float | None = Field(600.0, description="seconds; 0 or null: no limit")
    work_dir: Path


@dataclass
class TaskConfig:
    """A loaded config: header plus every Task's substituted parameters."""

    path: Path
    header: Header
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """A :class:`TaskSections` when loaded by :func:`load_config`."""

    @property
    def work_dir(self) -> Path:
        """The (absolute, existing, writable) work directory."""
        return self.header.work_dir


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> TaskConfig:
    """Read, substitute and check a config file. Raises ConfigError."""
    env = os.environ if environ is None else environ
    path = Path(path).absolute()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=path) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=path) from None
    if len(docs) != 2:
        raise ConfigError(
            f"expected two YAML documents (header, Task parameters), found {len(docs)}", file=path
        )
    raw_header, raw_tasks = docs
    if not isinstance(raw_header, dict):
        raise ConfigError("the header document must be a mapping", file=path, task=HEADER_KEY)
    if not isinstance(raw_tasks, dict):
        raise ConfigError("the second document must map Task names to parameters", file=path)
    tasks: dict[str, dict[str, Any]] = {}
    for name, params in raw_tasks.items():
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ConfigError("parameters must be a mapping", file=path, task=str(name))
        tasks[str(name)] = params

    resolver = _Resolver(path, raw_header, tasks, env)
    header_values = resolver.resolve_header()
    header = _build_header(path, header_values, env)
    resolver.header = header.model_dump(mode="json")
    resolved: dict[str, dict[str, Any]] = {}
    errors: dict[str, ConfigError] = {}
    for name in tasks:
        try:
            resolved[name] = resolver.resolve_task(name)
        except ConfigError as exc:
            errors[name] = exc
            warnings.warn(
                f"{exc} (Task {name} cannot run with this file)", ConfigWarning, stacklevel=2
            )
    return TaskConfig(path=path, header=header, tasks=TaskSections(resolved, errors))


def _build_header(path: Path, values: dict[str, Any], env: Mapping[str, str]) -> Header:
    values = dict(values)
    if values.get("experiment") in (None, ""):
        values["experiment"] = env.get("EXPERIMENT", "")
    if values.get("run") in (None, ""):
        values["run"] = env.get("RUN_NUM", "").split("_", 1)[0]
    for key, source in (("experiment", "$EXPERIMENT"), ("run", "$RUN_NUM")):
        if not values[key]:
            raise ConfigError(
                f"not set in the header and {source} is unset", file=path, task=HEADER_KEY, key=key
            )
    values["experiment"] = str(values["experiment"])
    values["run"] = str(values["run"])
    for key in ("date", "lute_version"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    work_dir = values.get("work_dir")
    if work_dir in (None, ""):
        raise ConfigError("work_dir is required", file=path, task=HEADER_KEY, key="work_dir")
    resolved = Path(str(work_dir)).expanduser()
    if not resolved.is_absolute():
        resolved = path.parent / resolved
    relative = not Path(str(work_dir)).expanduser().is_absolute()
    resolved = Path(os.path.normpath(resolved))
    try:
        ensure_work_dir(resolved, relative=relative)
    except WorkDirError as exc:
        raise ConfigError(str(exc), file=path, task=HEADER_KEY, key="work_dir") from None
    if not os.access(resolved, os.W_OK | os.X_OK):
        raise ConfigError(
            f"work_dir {resolved} is not writable", file=path, task=HEADER_KEY, key="work_dir"
        )
    values["work_dir"] = resolved
    try:
        return Header.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(err["msg"], file=path, task=HEADER_KEY, key=key) from None


class _UnresolvedError(Exception):
    pass


class _Resolver:
    """Resolves ``{{ ... }}`` references, with cycle detection."""

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        tasks: dict[str, dict[str, Any]],
        env: Mapping[str, str],
    ):
        self.path = path
        self.raw_header = header
        self.header: dict[str, Any] | None = None
        self.tasks = tasks
        self.env = env
        self._stack: list[tuple[str, str]] = []

    # -- entry points
    def resolve_header(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for k, v in self.raw_header.items():
            try:
                values[k] = self._value(v, HEADER_KEY, str(k))
            except ConfigError as exc:
                if str(k) not in _HEADER_ENV_KEYS:
                    raise
                # LUTE warns and runs: the key falls back to the ARP's variable
                warnings.warn(
                    f"{exc}; using {_HEADER_ENV_KEYS[str(k)]}", ConfigWarning, stacklevel=3
                )
                values[k] = None
        return values

    def resolve_task(self, task: str) -> dict[str, Any]:
        return {k: self._value(v, task, str(k)) for k, v in self.tasks[task].items()}

    # -- walking values
    def _value(self, value: Any, task: str, key: str) -> Any:
        if isinstance(value, str):
            return self._string(value, task, key)
        if isinstance(value, list):
            return [self._value(v, task, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self._value(v, task, f"{key}.{k}") for k, v in value.items()}
        return value

    def _string(self, text: str, task: str, key: str) -> Any:
        whole = _REF.fullmatch(text.strip())
        if whole and whole.group(0) == text.strip() and text.count("{{") == 1:
            return self._reference(whole.group(1), task, key)
        return _REF.sub(lambda m: str(self._reference(m.group(1), task, key)), text)

    def _reference(self, expr: str, task: str, key: str) -> Any:
        name, _, spec = expr.partition(":")
        name = name.strip()
        spec = spec.strip()
        if not name:
            raise ConfigError("empty substitution {{ }}", file=self.path, task=task, key=key)
        try:
            value = self._lookup(name, task, key)
        except _UnresolvedError as exc:
            raise ConfigError(
                f"unresolved substitution {{{{ {expr} }}}}: {exc}",
                file=self.path,
                task=task,
                key=key,
            ) from None
        if not spec:
            return value
        return _format(value, spec, expr, self.path, task, key)

    def _lookup(self, name: str, task: str, key: str) -> Any:
        if name.startswith("$"):
            var = name[1:]
            if var in self.env:
                return self.env[var]
            fallback = _ENV_FALLBACKS.get(var)
            if fallback and self.env.get(fallback):
                return self.env[fallback].split("_", 1)[0]
            raise _UnresolvedError(f"environment variable {var} is not set")
        parts = name.split(".")
        if len(parts) == 1 and parts[0] in self._header_keys():
            return self._header_value(parts[0], task, key)
        if task != HEADER_KEY and parts[0] in self.tasks[task]:
            return self._task_path(task, parts, name)
        if parts[0] in self.tasks and len(parts) > 1:
            return self._task_path(parts[0], parts[1:], name)
        if task == HEADER_KEY:
            raise _UnresolvedError(f"{name!r} is not a header key")
        raise _UnresolvedError(
            f"{name!r} is neither a header key, a parameter of {task}, nor Task.param"
        )

    def _header_keys(self) -> set[str]:
        keys = set(self.raw_header)
        if self.header is not None:
            keys |= set(self.header)
        return keys

    def _header_value(self, name: str, task: str, key: str) -> Any:
        if self.header is not None:
            value = self.header[name]
            return str(value) if name == "work_dir" else value
        if name not in self.raw_header:
            raise _UnresolvedError(f"header key {name!r} is not set")
        return self._guarded(
            HEADER_KEY, name, lambda: self._value(self.raw_header[name], HEADER_KEY, name)
        )

    def _task_path(self, task: str, parts: list[str], name: str) -> Any:
        node: Any = self.tasks[task]
        for i, part in enumerate(parts):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                missing = ".".join(parts[: i + 1])
                raise _UnresolvedError(f"Task {task} has no parameter {missing!r} in this file")
        dotted = ".".join(parts)
        return self._guarded(task, dotted, lambda: self._value(node, task, dotted))

    def _guarded(self, task: str, key: str, compute: Any) -> Any:
        marker = (task, key)
        if marker in self._stack:
            chain = " -> ".join(f"{t}.{k}" for t, k in [*self._stack, marker])
            raise _UnresolvedError(f"circular reference ({chain})")
        self._stack.append(marker)
        try:
            return compute()
        finally:
            self._stack.pop()


def _format(value: Any, spec: str, expr: str, path: Path, task: str, key: str) -> str:
    candidates: list[Any] = [value]
    if isinstance(value, str):
        if _NUMERIC_SPEC.search(spec):
            with contextlib.suppress(ValueError):
                candidates.insert(0, int(value))
        elif _FLOAT_SPEC.search(spec):
            with contextlib.suppress(ValueError):
                candidates.insert(0, float(value))
    for candidate in candidates:
        try:
            return format(candidate, spec)
        except (ValueError, TypeError):
            continue
    raise ConfigError(
        f"cannot format {value!r} with spec {spec!r} in {{{{ {expr} }}}}",
        file=path,
        task=task,
        key=key,
    )
