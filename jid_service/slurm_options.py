"""The Slurm options a caller may put in ``def.parameters``: names, short forms, value shapes.

One table says, for every option the JID knows, its long name, sbatch's short
form (if any) and the shape its value must have (a full match, ASCII only;
``None`` for a flag). A site chooses which of them it allows
(``slurm_allowed_options``) and may give an option a shape of its own, or
allow one the table does not know (``slurm_option_patterns``); an allowed
option without a shape gets :data:`GENERIC_VALUE`.

Short forms are rewritten to their long names before anything is checked, so
``-p milano`` and ``--partition=milano`` are the same option (and given both,
the same option twice). The options through which the JID controls a job
(its name, log files, script, environment, working directory, identity, the
``jid:<_id>`` comment) are refused whatever a site allows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlurmOption:
    """One sbatch option: its long name, short form and value shape."""

    name: str
    short: str | None
    pattern: str | None
    """Full-match regular expression of the value; None: a flag, no value."""


_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
# [0-9], never \d: \d also matches other scripts' digits ("1٣"), which would reach sbatch
_TIME = r"([0-9]+-[0-9]{1,2}(:[0-9]{1,2}){0,2}|[0-9]+(:[0-9]{1,2}){0,2})"
_MEMORY = r"[1-9][0-9]{0,9}[KMGT]?"
_COUNT = r"[1-9][0-9]{0,6}"
_GPUS = r"([A-Za-z0-9_.-]+:)?[1-9][0-9]{0,4}"
_HOSTLIST = r"[A-Za-z0-9_.,\[\]-]+"
_MAIL_TYPES = (
    "NONE|BEGIN|END|FAIL|REQUEUE|ALL|INVALID_DEPEND|STAGE_OUT|TIME_LIMIT|"
    "TIME_LIMIT_90|TIME_LIMIT_80|TIME_LIMIT_50|ARRAY_TASKS"
)

OPTION_TABLE: tuple[SlurmOption, ...] = (
    SlurmOption("partition", "p", rf"{_NAME}(,{_NAME})*"),
    SlurmOption("account", "A", r"[A-Za-z0-9_][A-Za-z0-9_.:-]*"),
    SlurmOption("ntasks", "n", _COUNT),
    SlurmOption("ntasks-per-node", None, _COUNT),
    SlurmOption("cpus-per-task", "c", r"[1-9][0-9]{0,4}"),
    SlurmOption("cpus-per-gpu", None, r"[1-9][0-9]{0,4}"),
    SlurmOption("nodes", "N", r"[0-9]{1,6}(-[0-9]{1,6})?"),
    SlurmOption("mem", None, _MEMORY),
    SlurmOption("mem-per-cpu", None, _MEMORY),
    SlurmOption("mem-per-gpu", None, _MEMORY),
    SlurmOption("time", "t", _TIME),
    SlurmOption("time-min", None, _TIME),
    SlurmOption("qos", "q", _NAME),
    SlurmOption("reservation", None, _NAME),
    SlurmOption("constraint", "C", r"[A-Za-z0-9_.,&|\[\]:*!()-]+"),
    SlurmOption("gres", None, r"[A-Za-z0-9_][A-Za-z0-9_.:,-]*"),
    SlurmOption("gpus", "G", _GPUS),
    SlurmOption("gpus-per-node", None, _GPUS),
    SlurmOption("gpus-per-task", None, _GPUS),
    SlurmOption("nodelist", "w", _HOSTLIST),
    SlurmOption("exclude", "x", _HOSTLIST),
    SlurmOption("mail-type", None, rf"({_MAIL_TYPES})(,({_MAIL_TYPES}))*"),
    SlurmOption("mail-user", None, r"[A-Za-z0-9._%+-]+(@[A-Za-z0-9.-]+)?"),
    SlurmOption("exclusive", None, None),  # "=user"/"=mcs"/"=topo" accepted too
    SlurmOption("requeue", None, None),
    SlurmOption("no-requeue", None, None),
    SlurmOption("oversubscribe", "s", None),
)
"""Every option the JID knows a value shape for (the default allows them all)."""

DEFAULT_SLURM_OPTIONS: tuple[str, ...] = tuple(option.name for option in OPTION_TABLE)
"""The default of ``slurm_allowed_options``: the whole table."""

EXCLUSIVE_VALUES = ("user", "mcs", "topo")
"""The values ``--exclusive=`` may take."""

GENERIC_VALUE = r"[A-Za-z0-9_.,:@/+-]+"
"""The shape of an allowed option that has none of its own."""

JID_OWNED_OPTIONS: frozenset[str] = frozenset({
    "job-name", "output", "error", "input", "open-mode", "wrap", "export", "export-file",
    "chdir", "uid", "gid", "comment", "parsable", "wait", "get-user-env", "test-only",
})
"""Options the JID sets or must control itself: refused whatever a site allows."""

_JID_OWNED_SHORT: dict[str, str] = {
    "J": "job-name", "o": "output", "e": "error", "i": "input", "D": "chdir", "W": "wait",
}

BY_NAME: dict[str, SlurmOption] = {option.name: option for option in OPTION_TABLE}
LONG_NAME_OF_SHORT: dict[str, str] = {
    **{option.short: option.name for option in OPTION_TABLE if option.short},
    **_JID_OWNED_SHORT,
}
"""sbatch's short forms -> long names (the JID-owned ones too, to refuse them by name)."""


def value_pattern(name: str, site_patterns: dict[str, str]) -> str | None:
    """The value shape of option ``name``: the site's, the table's, else the generic one."""
    if name in site_patterns:
        return site_patterns[name]
    if name in BY_NAME:
        return BY_NAME[name].pattern
    return GENERIC_VALUE


def is_flag(name: str, site_patterns: dict[str, str]) -> bool:
    """True for an option that takes no value (its next token is never its value)."""
    return name not in site_patterns and name in BY_NAME and BY_NAME[name].pattern is None
