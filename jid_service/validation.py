"""Turn a control document into a :class:`SubmitSpec`, refusing anything unsafe.

Nothing caller-supplied is ever run through a shell: ``def.parameters`` is split
with :func:`shlex.split` into argv tokens and every token is checked against a
closed grammar::

    --taskname NAME --config PATH [--debug] [-K CACHE]
        [--OPTION=VALUE | --OPTION VALUE | -X VALUE | -XVALUE | --FLAG]...

``def.executable`` must be the configured launcher (the JID runs its own copy
anyway). Slurm options come from :mod:`jid_service.slurm_options`: short forms
are rewritten to long ones, each option may be given once, value shapes are
ASCII only. ``-K`` (``--KERB``) is LUTE's Kerberos cache, checked by
:mod:`jid_service.kerberos_cache`. A path with a control character is refused
before it reaches the filesystem.
Any violation raises :class:`InvalidRequestError` naming the argument.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from jid_service.backends.base import SubmitSpec
from jid_service.errors import InvalidRequestError
from jid_service.host_paths import under_any
from jid_service.kerberos_cache import check_kerberos_cache
from jid_service.models import ControlDocument
from jid_service.settings import JIDSettings
from jid_service.slurm_options import (
    EXCLUSIVE_VALUES,
    JID_OWNED_OPTIONS,
    LONG_NAME_OF_SHORT,
    is_flag,
    value_pattern,
)
from lute.extensions import MANAGED_TASKS_GROUP, ExtensionClashError
from lute.managed_tasks import managed_task_names
from lute.suggestions import did_you_mean

LAUNCHER_NAME = "submit_slurm.sh"

@dataclass(frozen=True)
class Parameters:
    """``def.parameters`` once checked."""

    taskname: str
    config: Path
    debug: bool = False
    slurm_args: tuple[str, ...] = ()
    kerberos_cache: str | None = None
    """The job's ``KRB5CCNAME`` (``FILE:<path>``) from ``-K``, or None."""


def known_task_names() -> frozenset[str]:
    """Managed-task names from ``lute.managed_tasks`` (without importing Task code).

    Read per request (the listing is cached for seconds): a package installed
    beside the JID adds its managed tasks without a restart.
    """
    try:
        return frozenset(managed_task_names())
    except ExtensionClashError as exc:
        raise _reject(f"the installed packages disagree: {exc}") from None


def _check_task_name(taskname: str) -> None:
    known = known_task_names()
    if taskname not in known:
        raise _reject(
            f"--taskname {taskname!r} is not a known managed task{did_you_mean(taskname, known)}"
            f" (a package's managed tasks are found through its entry points, group "
            f"{MANAGED_TASKS_GROUP}, installed where the JID runs)"
        )


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
    if under_any(resolved, settings.allowed_config_roots):
        return resolved
    raise _reject(f"--config {raw!r} is not under an allowed config root")


_OPTION_NAME = re.compile(r"[a-z][a-z0-9-]*")


def _refuse_jid_owned(name: str) -> None:
    if name in JID_OWNED_OPTIONS:
        raise _reject(f"Slurm option --{name} is set by the JID and may not be given")


def _slurm_option(name: str, value: str | None, settings: JIDSettings) -> str:
    """Check one Slurm option (long name); return its normalized ``--name[=value]`` form."""
    _refuse_jid_owned(name)
    if name not in settings.slurm_allowed_options:
        raise _reject(f"Slurm option --{name} is not allowed")
    patterns = settings.slurm_option_patterns
    if name == "exclusive" and name not in patterns:
        if value is None:
            return "--exclusive"
        if value in EXCLUSIVE_VALUES:
            return f"--exclusive={value}"
        raise _reject(f"Slurm option --exclusive: bad value {value!r}")
    pattern = value_pattern(name, patterns)
    if pattern is None:
        if value is not None:
            raise _reject(f"Slurm option --{name} takes no value")
        return f"--{name}"
    if value is None or value == "":
        raise _reject(f"Slurm option --{name} needs a value")
    if not re.fullmatch(pattern, value, re.ASCII):
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


class _Tokens:
    """The argv tokens of ``def.parameters``, read left to right."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def __bool__(self) -> bool:
        return self.i < len(self.tokens)

    def take(self) -> str:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def peek(self) -> str | None:
        return self.tokens[self.i] if self else None

    def value_for(self, what: str) -> str:
        if not self:
            raise _reject(f"{what} needs a value")
        return self.take()


def _long_option(arg: str, tokens: _Tokens, settings: JIDSettings) -> tuple[str, str | None]:
    """``--name[=value]`` (the value maybe the next token): the long name and its value."""
    name, eq, inline = arg[2:].partition("=")
    if not _OPTION_NAME.fullmatch(name):
        raise _reject(f"def.parameters: unexpected argument {arg!r}")
    _refuse_jid_owned(name)
    if eq:
        return name, inline
    following = tokens.peek()
    if (
        not is_flag(name, settings.slurm_option_patterns)
        and following is not None
        and not following.startswith("--")
    ):
        return name, tokens.take()
    return name, None


def _short_option(arg: str, tokens: _Tokens, settings: JIDSettings) -> tuple[str, str | None]:
    """sbatch's ``-X value`` or ``-Xvalue``: the long name and its value."""
    name = LONG_NAME_OF_SHORT.get(arg[1:2])
    if name is None:
        raise _reject(f"def.parameters: unexpected argument {arg!r}")
    _refuse_jid_owned(name)
    attached = arg[2:]
    if is_flag(name, settings.slurm_option_patterns):
        if attached:
            raise _reject(f"def.parameters: unexpected argument {arg!r}")
        return name, None
    if attached:
        return name, attached
    if not tokens:
        raise _reject(f"Slurm option {arg} (--{name}) needs a value")
    return name, tokens.take()


def read_parameters(parameters: str, settings: JIDSettings) -> Parameters:
    """Split and check ``def.parameters`` into :class:`Parameters`."""
    try:
        tokens = _Tokens(shlex.split(parameters))
    except ValueError as err:
        raise _reject(f"def.parameters cannot be parsed: {err}") from None
    taskname: str | None = None
    config: str | None = None
    kerberos: str | None = None
    debug = False
    slurm: list[str] = []
    slurm_names: set[str] = set()
    while tokens:
        arg = tokens.take()
        flag, eq, inline = arg.partition("=")
        if flag in ("--taskname", "--config", "--KERB") or arg == "-K":
            value = inline if eq else tokens.value_for(flag)
            if flag == "--taskname":
                if taskname is not None:
                    raise _reject("--taskname given twice")
                taskname = value
            elif flag == "--config":
                if config is not None:
                    raise _reject("--config given twice")
                config = value
            else:
                if kerberos is not None:
                    raise _reject("-K (the Kerberos cache) given twice")
                kerberos = value
            continue
        if arg == "--debug":
            debug = True
            continue
        if flag == "--debug":
            raise _reject("--debug takes no value")
        if arg.startswith("--") and arg != "--":
            name, value = _long_option(arg, tokens, settings)
        elif arg.startswith("-") and len(arg) > 1 and arg[1] != "-":
            name, value = _short_option(arg, tokens, settings)
        else:
            raise _reject(f"def.parameters: unexpected argument {arg!r}")
        option = _slurm_option(name, value, settings)
        if name in slurm_names:
            # sbatch would silently take the last one: which the caller meant is unknown
            raise _reject(f"Slurm option --{name} given twice")
        slurm_names.add(name)
        slurm.append(option)
    if taskname is None:
        raise _reject("--taskname is required in def.parameters")
    _check_task_name(taskname)
    if config is None:
        raise _reject("--config is required in def.parameters")
    return Parameters(
        taskname=taskname,
        config=check_config_path(config, settings),
        debug=debug,
        slurm_args=tuple(slurm),
        kerberos_cache=(
            check_kerberos_cache(kerberos, settings.kerberos_cache_roots)
            if kerberos is not None else None
        ),
    )


def parse_parameters(
    parameters: str, settings: JIDSettings
) -> tuple[str, Path, bool, tuple[str, ...]]:
    """``def.parameters`` checked: (taskname, config path, debug, Slurm args)."""
    checked = read_parameters(parameters, settings)
    return checked.taskname, checked.config, checked.debug, checked.slurm_args


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
    checked = read_parameters(doc.definition.parameters, settings)
    return SubmitSpec(
        job_key=doc.id,
        experiment=doc.experiment,
        run=str(doc.run_num),
        user=doc.definition.run_as_user or user,
        taskname=checked.taskname,
        config_path=checked.config,
        debug=checked.debug,
        slurm_args=checked.slurm_args,
        kerberos_cache=checked.kerberos_cache,
    )
