"""Turn a control document into a :class:`SubmitSpec`, refusing anything unsafe.

Nothing caller-supplied is ever run through a shell: ``def.parameters`` is split
with :func:`shlex.split` into argv tokens and every token is checked against a
closed grammar::

    --taskname NAME --config PATH [--debug] [--OPTION=VALUE | --OPTION VALUE | --exclusive]...

``def.executable`` must be the configured launcher (the JID runs its own copy
anyway). Each Slurm option may be given once; value shapes are ASCII only; a
path with a control character is refused before it reaches the filesystem.
Any violation raises :class:`InvalidRequestError` naming the argument.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from jid_service.backends.base import SubmitSpec
from jid_service.errors import InvalidRequestError
from jid_service.models import ControlDocument
from jid_service.settings import JIDSettings
from lute.managed_tasks import managed_task_names

LAUNCHER_NAME = "submit_slurm.sh"

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
# [0-9], never \d: \d also matches other scripts' digits ("1٣"), which would reach sbatch
_TIME = r"([0-9]+-[0-9]{1,2}(:[0-9]{1,2}){0,2}|[0-9]+(:[0-9]{1,2}){0,2})"
OPTION_VALUE_PATTERNS: dict[str, str | None] = {
    "partition": rf"{_NAME}(,{_NAME})*",
    "account": r"[A-Za-z0-9_][A-Za-z0-9_.:-]*",
    "ntasks": r"[1-9][0-9]{0,6}",
    "cpus-per-task": r"[1-9][0-9]{0,4}",
    "nodes": r"[0-9]{1,6}(-[0-9]{1,6})?",
    "mem": r"[1-9][0-9]{0,9}[KMGT]?",
    "time": _TIME,
    "qos": _NAME,
    "reservation": _NAME,
    "constraint": r"[A-Za-z0-9_.,&|\[\]:*!()-]+",
    "gres": r"[A-Za-z0-9_][A-Za-z0-9_.:,-]*",
    "exclusive": None,  # a flag; "=user"/"=mcs"/"=topo" accepted below
}
"""Allowed value shapes (full match, ASCII only). ``None``: the option takes no value."""

_GENERIC_VALUE = r"[A-Za-z0-9_.,:@/+-]+"
_OPTION_NAME = r"[a-z][a-z0-9-]*"
_EXCLUSIVE_VALUES = ("user", "mcs", "topo")


def known_task_names() -> frozenset[str]:
    """Managed-task names from ``lute.managed_tasks`` (without importing Task code)."""
    return frozenset(managed_task_names())


def _reject(message: str) -> InvalidRequestError:
    return InvalidRequestError(message)


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def _refuse_control_characters(value: str, what: str) -> None:
    """Refuse NUL and the other control characters before ``value`` meets the filesystem.

    The OS refuses a NUL in a path with ``ValueError``, and no real path holds a
    control character: both are the caller's error, named as such.
    """
    found = _CONTROL_CHARACTER.search(value)
    if found:
        raise _reject(f"{what}: contains the control character U+{ord(found.group()):04X}")


def check_executable(executable: str, settings: JIDSettings) -> None:
    """Accept the configured launcher or ``<allowed location>/launch_scripts/submit_slurm.sh``."""
    _refuse_control_characters(executable, "def.executable")
    launcher = settings.launcher.resolve()
    candidate = Path(executable)
    try:
        is_launcher = candidate.is_absolute() and candidate.resolve() == launcher
    except (OSError, RuntimeError):  # a symlink loop, a name too long: not the launcher
        is_launcher = False
    if is_launcher:
        return
    normalized = os.path.normpath(executable)
    if ".." not in Path(executable).parts and normalized == executable.rstrip("/"):
        for prefix in settings.allowed_launcher_locations:
            expected = os.path.normpath(os.path.join(prefix, "launch_scripts", LAUNCHER_NAME))
            if normalized == expected:
                return
    raise _reject(
        f"def.executable {executable!r} is not the configured launcher "
        f"({launcher.name} under an allowed location)"
    )


def check_config_path(raw: str, settings: JIDSettings) -> Path:
    """Resolve ``--config`` (symlinks too) and require it under an allowed root."""
    if "\x00" in raw:
        raise _reject("--config: path contains a NUL byte")
    _refuse_control_characters(raw, "--config")
    try:
        path = Path(raw).expanduser()
    except RuntimeError:  # "~name/..." of a user without a home directory
        raise _reject(f"--config {raw!r} must be an absolute path") from None
    if not path.is_absolute():
        raise _reject(f"--config {raw!r} must be an absolute path")
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _reject(f"--config {raw!r} does not exist") from None
    if not resolved.is_file():
        raise _reject(f"--config {raw!r} is not a file")
    for root in settings.allowed_config_roots:
        try:
            root_resolved = root.resolve()
        except (OSError, RuntimeError):
            continue
        if resolved.is_relative_to(root_resolved):
            return resolved
    raise _reject(f"--config {raw!r} is not under an allowed config root")


def _slurm_option(name: str, value: str | None, settings: JIDSettings) -> str:
    """Check one Slurm option; return its normalized ``--name[=value]`` form."""
    if name not in settings.slurm_allowed_options:
        raise _reject(f"Slurm option --{name} is not allowed")
    pattern = OPTION_VALUE_PATTERNS.get(name, _GENERIC_VALUE)
    if name == "exclusive":
        if value is None:
            return "--exclusive"
        if value in _EXCLUSIVE_VALUES:
            return f"--exclusive={value}"
        raise _reject(f"Slurm option --exclusive: bad value {value!r}")
    if value is None or value == "":
        raise _reject(f"Slurm option --{name} needs a value")
    if pattern is None or not re.fullmatch(pattern, value, re.ASCII):
        raise _reject(f"Slurm option --{name}: bad value {value!r}")
    if name == "nodes":
        low, _, high = value.partition("-")
        lo = int(low)
        if high:
            hi = int(high)
            if hi < max(lo, 1):
                raise _reject(f"Slurm option --nodes: bad range {value!r}")
            # A 0 lower bound crashes slurmctld 22.05 when the node is busy.
            value = f"{max(lo, 1)}-{hi}"
        elif lo < 1:
            raise _reject("Slurm option --nodes must be at least 1")
    return f"--{name}={value}"


def parse_parameters(
    parameters: str, settings: JIDSettings
) -> tuple[str, Path, bool, tuple[str, ...]]:
    """Split and check ``def.parameters``: (taskname, config path, debug, Slurm args)."""
    try:
        tokens = shlex.split(parameters)
    except ValueError as err:
        raise _reject(f"def.parameters cannot be parsed: {err}") from None
    taskname: str | None = None
    config: str | None = None
    debug = False
    slurm: list[str] = []
    slurm_names: set[str] = set()
    i = 0
    while i < len(tokens):
        arg = tokens[i]
        if not arg.startswith("--") or arg == "--":
            raise _reject(f"def.parameters: unexpected argument {arg!r}")
        name, eq, inline = arg[2:].partition("=")
        value: str | None = inline if eq else None
        if name in ("taskname", "config"):
            if value is None:
                if i + 1 >= len(tokens):
                    raise _reject(f"--{name} needs a value")
                value = tokens[i + 1]
                i += 1
            if name == "taskname":
                if taskname is not None:
                    raise _reject("--taskname given twice")
                taskname = value
            else:
                if config is not None:
                    raise _reject("--config given twice")
                config = value
        elif name == "debug":
            if value is not None:
                raise _reject("--debug takes no value")
            debug = True
        else:
            if not re.fullmatch(_OPTION_NAME, name, re.ASCII):
                raise _reject(f"def.parameters: unexpected argument {arg!r}")
            if (
                value is None
                and name != "exclusive"
                and i + 1 < len(tokens)
                and not tokens[i + 1].startswith("--")
            ):
                value = tokens[i + 1]
                i += 1
            option = _slurm_option(name, value, settings)
            if name in slurm_names:
                # sbatch would silently take the last one: which the caller meant is unknown
                raise _reject(f"Slurm option --{name} given twice")
            slurm_names.add(name)
            slurm.append(option)
        i += 1
    if taskname is None:
        raise _reject("--taskname is required in def.parameters")
    if taskname not in known_task_names():
        raise _reject(f"--taskname {taskname!r} is not a known managed task")
    if config is None:
        raise _reject("--config is required in def.parameters")
    return taskname, check_config_path(config, settings), debug, tuple(slurm)


def check_document_experiment(doc: ControlDocument, experiment: str) -> None:
    """InvalidRequestError unless ``doc`` belongs to the ``experiment`` of its request path."""
    if doc.experiment != experiment:
        raise _reject(
            f"experiment: document says {doc.experiment!r} but the path says {experiment!r}"
        )


def submit_spec(
    doc: ControlDocument, experiment: str, user: str, settings: JIDSettings
) -> SubmitSpec:
    """Validate ``doc`` (posted under ``experiment`` by ``user``) into a SubmitSpec."""
    check_document_experiment(doc, experiment)
    check_executable(doc.definition.executable, settings)
    taskname, config, debug, slurm_args = parse_parameters(doc.definition.parameters, settings)
    return SubmitSpec(
        job_key=doc.id,
        experiment=doc.experiment,
        run=str(doc.run_num),
        user=doc.definition.run_as_user or user,
        taskname=taskname,
        config_path=config,
        debug=debug,
        slurm_args=slurm_args,
    )
