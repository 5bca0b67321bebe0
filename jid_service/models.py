"""Request and response models of the JID HTTP API (strict: unknown keys are refused).

Field names follow ARP's control document. Where LUTE's operator sends empty
strings (``status``, ``tool_id``) or nulls (``arp_root_job_id``, ``user``) the
models accept them; everything else is checked. No free-text field may hold a
control character (``def.parameters`` and the scheduler's ``raw_status`` may
hold tab, line feed and carriage return): PostgreSQL cannot store a NUL,
and none of these fields has a use for the others. An integer field also
accepts an integral number written as a float (``46.0``), as JSON Schema's
``integer`` does.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from jid_service.backends.job_cost import JobCost
from lute.job_status import JobStatus

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
EXPERIMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# LUTE's launcher sends "<RUN>_<UTC isoformat()>", colons (and a "+00:00" offset) included
RUN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _refusing(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found:
            raise PydanticCustomError(
                "control_character", "control character U+{code} is not allowed",
                {"code": f"{ord(found.group()):04X}"},
            )
        return value

    return AfterValidator(check)


def _integral_float_as_int(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise PydanticCustomError("int_from_float", "a whole number is required, not {value}",
                                  {"value": value})
    return value


SingleLine = _refusing(_CONTROL)
"""Refuses every control character (NUL included)."""
Multiline = _refusing(_CONTROL_BUT_WHITESPACE)
"""Refuses every control character but tab, line feed and carriage return."""
WholeNumber = BeforeValidator(_integral_float_as_int)
"""Lets a strict integer field accept ``46.0`` as 46 (and refuse ``46.5``)."""

DocId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Experiment = Annotated[str, StringConstraints(pattern=EXPERIMENT_PATTERN)]
RunNumber = Annotated[str, StringConstraints(pattern=RUN_PATTERN)]
RunInt = Annotated[int, WholeNumber, Field(strict=True, ge=0, le=10**9)]
ShortText = Annotated[str, StringConstraints(max_length=256), SingleLine]
StrictInt = Annotated[int, WholeNumber, Field(strict=True)]

T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, serialize_by_alias=True)


StagePath = Annotated[str, StringConstraints(min_length=1, max_length=1024), SingleLine]


class StageIn(_Strict):
    """One input to copy into the job's work dir before it is submitted."""

    source: StagePath = Field(description="absolute path of a file under a staging root")
    target: StagePath = Field(description="path relative to the job's work dir")


class StageOut(_Strict):
    """Outputs to copy out of the job's work dir once it is DONE."""

    source: StagePath = Field(
        description="glob relative to the job's work dir (`*` and `?` stay within one "
                    "directory, `**` spans any)")
    target: StagePath = Field(description="absolute directory under a staging root")


class StagedFile(_Strict):
    """One file staging moved: where it landed, its size and SHA-256."""

    path: Annotated[str, StringConstraints(max_length=4096), SingleLine]
    bytes: Annotated[int, WholeNumber, Field(strict=True, ge=0)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    direction: Literal["in", "out"]


def _is_none(value: Any) -> bool:
    # a document without staging keeps the shape it had before staging existed
    return value is None


class JobDefinition(_Strict):
    """ARP's job definition: what to run. Only the launcher may be named as executable."""

    id: DocId = Field(alias="_id")
    name: ShortText = Field(description="the managed task's name, for display")
    executable: Annotated[
        str, StringConstraints(min_length=1, max_length=4096), SingleLine
    ] = Field(description="must resolve to the JID's configured launcher (submit_slurm.sh)")
    trigger: ShortText = "MANUAL"
    location: ShortText = ""
    parameters: Annotated[str, StringConstraints(max_length=8192), Multiline] = Field(
        description="--taskname NAME --config PATH [--debug] <allow-listed Slurm options>"
    )
    run_as_user: ShortText | None = None
    stage_in: list[StageIn] | None = Field(
        default=None, max_length=256, exclude_if=_is_none,
        description="files copied into the job's work dir before submission")
    stage_out: list[StageOut] | None = Field(
        default=None, max_length=256, exclude_if=_is_none,
        description="files copied out of the job's work dir once it is DONE")

class ControlDocument(_Strict):
    """ARP's control document: one job of a workflow."""

    id: DocId = Field(alias="_id")
    arp_root_job_id: ShortText | StrictInt | None = Field(
        default=None, description="the workflow run this job belongs to (listed by /jobs)"
    )
    experiment: Experiment
    run_num: RunNumber | RunInt = Field(description="the run; an int or a string like '12'")
    user: ShortText | None = None
    status: JobStatus | Literal[""] = ""
    tool_id: Annotated[str, StringConstraints(max_length=128), SingleLine] = ""
    def_id: ShortText = ""
    definition: JobDefinition = Field(alias="def")
    raw_status: Annotated[str, StringConstraints(max_length=256), Multiline] | None = Field(
        default=None, description="the scheduler's own state string"
    )
    exit_code: StrictInt | None = None
    staged: list[StagedFile] | None = Field(
        default=None, max_length=100_000, exclude_if=_is_none,
        description="what staging moved (set by the JID)")
    staging_error: Annotated[str, StringConstraints(max_length=4096), Multiline] | None = \
        Field(default=None, exclude_if=_is_none,
              description="why staging failed (set by the JID)")
    cost: JobCost | None = Field(
        default=None, exclude_if=_is_none,
        description="what the finished job cost (set by the JID; ignored when sent)")

class Envelope(BaseModel, Generic[T]):
    """Every answer: ``success``, the ``value`` and, on failure, a readable ``error``."""

    success: bool
    value: T | None = None
    error: str | None = None


class ErrorEnvelope(BaseModel):
    """An error answer: ``success`` is false and ``error`` says what is wrong."""

    success: Literal[False] = False
    value: None = None
    error: str


class LogRequest(_Strict):
    """An incremental log read."""

    job: ControlDocument
    # up to the largest file offset: past the log's end reads as an empty slice
    offset: Annotated[int, WholeNumber] = Field(default=0, strict=True, ge=0, le=2**63 - 1)
    limit: Annotated[int, WholeNumber] = Field(default=65536, strict=True, ge=1,
                                               le=4 * 1024 * 1024)


class TaskDuration(BaseModel):
    """How long recent successful jobs of one step took (submission to end)."""

    task: str
    runs: int = Field(description="how many recent DONE jobs the figure is from (at most 5)")
    median_seconds: float | None = Field(description="their median; null without any")


class LogSlice(BaseModel):
    """Text of a job's log from ``offset``; continue from ``next_offset``."""

    text: str
    offset: int
    next_offset: int
    complete: bool = Field(description="the job has ended and the whole log was read")


class WaitRequest(_Strict):
    """Wait until any job's status differs from the one sent, or the timeout."""

    jobs: list[ControlDocument] = Field(max_length=1000)
    timeout: float = Field(default=30.0, strict=True, ge=0, le=60)


class RenderedJob(BaseModel):
    """The exact submission a backend would make (dry run)."""

    backend: str
    argv: list[str] | None = None
    script: str | None = None


class HealthReport(BaseModel):
    """The daemon's view of its dependencies."""

    backend: str
    backend_ok: bool
    store_ok: bool
    detail: str | None = None
    replica: str | None = None
    """This replica's name (setting ``replica_name``, else ``hostname:pid``)."""
    poller: str | None = None
    """``leader`` while this replica polls the backend, ``standby`` while another does."""


class RunTokenRequest(_Strict):
    """Ask for a token bound to one run."""

    arp_root_job_id: str = Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")
    ttl: float = Field(strict=True, gt=0, description="seconds the token is valid")


class RunToken(BaseModel):
    """A run-scoped token (the caller's user, one experiment, one ``arp_root_job_id``)."""

    token: str
    arp_root_job_id: str
    expires_in: int
