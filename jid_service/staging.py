"""A step's file staging: its ``def.stage_in``/``def.stage_out`` checked, then run.

Paths on the JID's host (``stage_in`` sources, ``stage_out`` targets) must be
absolute and resolve, symlinks followed, under a ``staging_roots`` directory;
paths in the job's work dir (``stage_in`` targets, ``stage_out`` globs) must be
relative without ``..``. Each violation is an :class:`InvalidRequestError`
naming the field. Stage-in runs before the submission (a failure submits
nothing); stage-out runs when the poller sees the job DONE (a failure ends the
job FAILED with raw status ``STAGE_OUT_FAILED``).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from jid_service.backend_call import call_backend
from jid_service.backends.base import StagingFailed, SubmitSpec
from jid_service.backends.staging_files import StageInItem, StageOutItem
from jid_service.context import ServicePart
from jid_service.errors import InvalidRequestError
from jid_service.host_paths import under_any
from jid_service.models import JobDefinition, StagedFile
from jid_service.settings import JIDSettings
from jid_service.validation import check_config_path

log = logging.getLogger(__name__)

STAGING_OUT_RAW_STATUS = "STAGING_OUT"
"""``raw_status`` of a DONE job while its outputs are copied (status still RUNNING)."""
STAGE_OUT_FAILED_RAW_STATUS = "STAGE_OUT_FAILED"


@dataclass(frozen=True)
class StagingPlan:
    """A step's staging, checked."""

    stage_in: tuple[StageInItem, ...] = ()
    stage_out: tuple[StageOutItem, ...] = ()
    roots: tuple[Path, ...] = field(default=(), repr=False)

    def __bool__(self) -> bool:
        return bool(self.stage_in or self.stage_out)


def _under_roots(raw: str, what: str, roots: tuple[Path, ...], *, must_exist: bool) -> Path:
    path = Path(raw)
    if not path.is_absolute():
        raise InvalidRequestError(f"{what}: {raw!r} must be an absolute path")
    if ".." in path.parts:
        raise InvalidRequestError(f"{what}: {raw!r} may not contain '..'")
    try:
        resolved = path.resolve(strict=must_exist)
    except (OSError, RuntimeError):
        raise InvalidRequestError(f"{what}: {raw!r} does not exist") from None
    if must_exist and not resolved.is_file():
        raise InvalidRequestError(f"{what}: {raw!r} is not a file")
    if not must_exist and resolved.exists() and not resolved.is_dir():
        raise InvalidRequestError(f"{what}: {raw!r} is not a directory")
    if not under_any(resolved, roots):
        raise InvalidRequestError(f"{what}: {raw!r} is not under a staging root")
    return resolved


def _relative(raw: str, what: str) -> PurePosixPath:
    path = PurePosixPath(raw)
    if path.is_absolute():
        raise InvalidRequestError(f"{what}: {raw!r} must be relative to the job's work dir")
    if ".." in path.parts:
        raise InvalidRequestError(f"{what}: {raw!r} may not contain '..'")
    if not path.parts or path.parts == (".",):
        raise InvalidRequestError(f"{what}: {raw!r} names no file")
    return path


def _resolved_roots(settings: JIDSettings) -> tuple[Path, ...]:
    roots = []
    for root in settings.staging_roots:
        try:
            roots.append(root.resolve())
        except (OSError, RuntimeError):
            continue
    return tuple(roots)


def staging_plan(definition: JobDefinition, settings: JIDSettings) -> StagingPlan:
    """``def.stage_in`` and ``def.stage_out`` checked; InvalidRequestError naming the field."""
    if not definition.stage_in and not definition.stage_out:
        return StagingPlan()
    roots = _resolved_roots(settings)
    if not roots:
        raise InvalidRequestError(
            "def.stage_in/def.stage_out: staging is not enabled on this JID (no staging_roots)")
    stage_in = []
    for i, item in enumerate(definition.stage_in or ()):
        what = f"def.stage_in[{i}]"
        stage_in.append(StageInItem(
            source=_under_roots(item.source, f"{what}.source", roots, must_exist=True),
            target=_relative(item.target, f"{what}.target"),
        ))
    stage_out = []
    for i, item in enumerate(definition.stage_out or ()):
        what = f"def.stage_out[{i}]"
        pattern = _relative(item.source, f"{what}.source")
        stage_out.append(StageOutItem(
            pattern=str(pattern),
            target=_under_roots(item.target, f"{what}.target", roots, must_exist=False),
        ))
    return StagingPlan(tuple(stage_in), tuple(stage_out), roots)


def _config_of(parameters: str, settings: JIDSettings) -> Path:
    """The ``--config`` of a stored job's ``def.parameters`` (validated when submitted)."""
    tokens = shlex.split(parameters)
    for i, arg in enumerate(tokens):
        if arg == "--config" and i + 1 < len(tokens):
            return check_config_path(tokens[i + 1], settings)
        if arg.startswith("--config="):
            return check_config_path(arg.split("=", 1)[1], settings)
    raise InvalidRequestError("def.parameters: no --config")


class Staging(ServicePart):
    """Runs a step's staging through the backend."""

    def plan(self, definition: JobDefinition) -> StagingPlan:
        """The checked staging of ``definition``."""
        return staging_plan(definition, self.settings)

    async def stage_in(self, spec: SubmitSpec, plan: StagingPlan) -> list[StagedFile]:
        """Copy the inputs before submission; InvalidRequestError (422) if one cannot be.

        BackendUnavailable (503) passes through: the gateway may answer later.
        """
        if not plan.stage_in:
            return []
        work_dir = self.backend.staging_work_dir(spec.config_path)
        try:
            staged = await call_backend(self.metrics, "stage_in",
                                        self.backend.stage_in(work_dir, plan.stage_in))
        except StagingFailed as err:
            raise InvalidRequestError(f"def.stage_in: staging failed: {err}") from err
        log.info("job %s: staged in %d file(s), %d bytes", spec.job_key, len(staged),
                 sum(f.bytes for f in staged))
        return staged

    async def stage_out(self, document: dict[str, Any]) -> tuple[list[StagedFile], str | None]:
        """Copy a DONE job's outputs: (what moved, None) or ([], why it failed).

        BackendUnavailable passes through: the poller tries again at a later tick.
        """
        try:
            definition = JobDefinition.model_validate(document["def"])
            plan = self.plan(definition)
            config = _config_of(definition.parameters, self.settings)
            work_dir = self.backend.staging_work_dir(config)
            staged = await call_backend(self.metrics, "stage_out",
                                        self.backend.stage_out(work_dir, plan.stage_out))
        except (StagingFailed, InvalidRequestError, OSError) as err:
            message = f"stage-out failed: {err}"
            log.warning("job %s: %s", document.get("_id"), message)
            return [], message
        log.info("job %s: staged out %d file(s), %d bytes", document.get("_id"), len(staged),
                 sum(f.bytes for f in staged))
        return staged, None


def wants_stage_out(document: dict[str, Any]) -> bool:
    """Whether a stored job declared outputs to stage out."""
    definition = document.get("def")
    return isinstance(definition, dict) and bool(definition.get("stage_out"))
