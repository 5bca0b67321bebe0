"""Dynamic workflow definitions (``launch_airflow.py -W workflow.yaml``).

A definition is LUTE's tree of steps::

    task_name: Tester
    slurm_params: "--ntasks=2"     # optional; replaces the run's Slurm arguments
    next:
      - task_name: BinaryTester
        next: []

LUTE's engine-neutral files (``workflows/common/*.dag``) are read too: the
document may carry the ``!LUTE_DAG`` tag, and every step may say
``run_dependent: true|false``. Here each launch is for one run and every step
runs once per launch whatever it says, as in LUTE's own engines; the key is
checked (a boolean) and otherwise has no effect, so it is not part of a
definition's content hash. Other tags (LUTE's trigger rules, branches, run
types, parameter sweeps) are refused by name.

Unlike LUTE, which keeps the one user workflow in a global Airflow Variable
(two launches at once race on it), each distinct definition is stored as its
own file named by its content hash, and the DAG factory
``workflows/airflow/dynamic.py`` builds one DAG per file. A definition read
from a file takes its name from the file (``sfx_tagged.dag`` -> ``sfx_tagged``):
its DAG id is ``lute_dyn_<name>_<hash8>`` and its file ``<name>__<hash>.yaml``;
a definition without a name keeps ``lute_dyn_<hash12>`` and ``<hash>.yaml``.
Two different workflows therefore never overwrite each other, and re-launching
the same workflow reuses its DAG. Where the launcher and Airflow share no file
system, the launcher stores the same text as the Airflow Variable
``lute_dyn_def__<file stem>`` instead (:func:`variable_key`), content-addressed
in the same way.

This module must not import Airflow: the launcher uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAG_ID_PREFIX = "lute_dyn_"
"""Every dynamic workflow's DAG id starts with this."""

HASH_CHARS_IN_DAG_ID = 12
HASH_CHARS_IN_NAMED_DAG_ID = 8
NAME_SEPARATOR = "__"
"""Between the name and the hash in a stored file's name."""
_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_MAX_NAME = 40


def workflow_name(text: str) -> str | None:
    """A DAG-id-safe name from ``text`` (a file stem): lower case, ``_`` between words.

    None when nothing usable is left.
    """
    name = _NAME_CHARS.sub("_", text.lower()).strip("_")[:_MAX_NAME].strip("_")
    return name or None

_TASK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MAX_DEPTH = 64
_MAX_STEPS = 256


class WorkflowDefinitionError(ValueError):
    """A workflow definition file cannot be read or is invalid."""


class WorkflowStep(BaseModel):
    """One step of a dynamic workflow: a managed task and the steps after it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_name: str = Field(description="managed task name, e.g. Tester")
    slurm_params: str = Field(
        default="",
        description="if non-empty, replaces ALL the run's Slurm arguments for this step",
    )
    next: tuple[WorkflowStep, ...] = Field(default=(), description="steps run after this one")
    run_dependent: bool = Field(
        default=True,
        description="LUTE's flag; accepted and checked, no effect (one run per launch)",
    )

    @field_validator("task_name")
    @classmethod
    def _check_task_name(cls, value: str) -> str:
        if not _TASK_NAME.match(value):
            raise ValueError(
                f"task_name {value!r} is not a managed task name (letters, digits, underscores)"
            )
        return value

    @field_validator("slurm_params", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return "" if value is None else value

    @field_validator("next", mode="before")
    @classmethod
    def _none_is_no_steps(cls, value: object) -> object:
        return () if value is None else value

    def walk(self) -> Iterator[WorkflowStep]:
        """Every step of the tree, depth first, this one first."""
        yield self
        for child in self.next:
            yield from child.walk()


class WorkflowDefinition(BaseModel):
    """A whole dynamic workflow: the root step of the tree."""

    model_config = ConfigDict(frozen=True)

    root: WorkflowStep
    name: str | None = Field(
        default=None, description="readable name in the DAG id (not part of the content hash)"
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return None if value is None else workflow_name(value)

    @model_validator(mode="after")
    def _check_size(self) -> WorkflowDefinition:
        def depth(step: WorkflowStep, level: int) -> int:
            if level > _MAX_DEPTH:
                raise ValueError(f"workflow is nested deeper than {_MAX_DEPTH} steps")
            return max([level, *(depth(c, level + 1) for c in step.next)])

        depth(self.root, 1)
        count = sum(1 for _ in self.root.walk())
        if count > _MAX_STEPS:
            raise ValueError(f"workflow has {count} steps; at most {_MAX_STEPS} are allowed")
        return self

    @classmethod
    def from_data(cls, data: object, name: str | None = None) -> WorkflowDefinition:
        """Validate LUTE's tree (a mapping with ``task_name`` at the top)."""
        return cls(root=WorkflowStep.model_validate(data), name=name)

    def to_data(self) -> dict:
        """The tree as plain data, in LUTE's shape (``next`` always present)."""

        def dump(step: WorkflowStep) -> dict:
            return {
                "task_name": step.task_name,
                "slurm_params": step.slurm_params,
                "next": [dump(c) for c in step.next],
            }

        return dump(self.root)

    def canonical_json(self) -> str:
        """The canonical JSON text the content hash is taken of."""
        return json.dumps(self.to_data(), sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        """Hex sha256 of the canonical JSON: equal trees give equal hashes."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def dag_id(self) -> str:
        """``lute_dyn_<name>_<first 8 hex of the hash>``, or ``lute_dyn_<first 12 hex>``."""
        digest = self.content_hash()
        if self.name:
            return f"{DAG_ID_PREFIX}{self.name}_{digest[:HASH_CHARS_IN_NAMED_DAG_ID]}"
        return f"{DAG_ID_PREFIX}{digest[:HASH_CHARS_IN_DAG_ID]}"

    @property
    def file_stem(self) -> str:
        """The stored file's name without ``.yaml``: ``[<name>__]<hash>``."""
        digest = self.content_hash()
        return f"{self.name}{NAME_SEPARATOR}{digest}" if self.name else digest

    def steps(self) -> list[WorkflowStep]:
        """Every step, depth first."""
        return list(self.root.walk())

    def task_names(self) -> list[str]:
        """The distinct managed task names, in first-seen order."""
        seen: dict[str, None] = {}
        for step in self.root.walk():
            seen.setdefault(step.task_name, None)
        return list(seen)


LUTE_DAG_TAG = "!LUTE_DAG"
"""The tag of LUTE's engine-neutral workflow files."""


class _UnsupportedTagError(yaml.YAMLError):
    pass


class _DefinitionLoader(yaml.SafeLoader):
    """Safe YAML plus LUTE's ``!LUTE_DAG`` tag; any other tag is named and refused."""


def _lute_dag(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise _UnsupportedTagError(f"{LUTE_DAG_TAG} must tag a mapping (task_name, next)")


def _other_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
    raise _UnsupportedTagError(
        f"the tag !{suffix} (line {node.start_mark.line + 1}) is not supported: "
        f"only {LUTE_DAG_TAG} is"
    )


_DefinitionLoader.add_constructor(LUTE_DAG_TAG, _lute_dag)
_DefinitionLoader.add_multi_constructor("!", _other_tag)


def parse_definition(
    text: str, source: str = "<string>", name: str | None = None
) -> WorkflowDefinition:
    """Parse a definition from YAML (or JSON) text; errors name ``source``."""
    try:
        data = yaml.load(text, Loader=_DefinitionLoader)  # noqa: S506 - a SafeLoader subclass
    except _UnsupportedTagError as exc:
        raise WorkflowDefinitionError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise WorkflowDefinitionError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise WorkflowDefinitionError(
            f"{source}: a workflow definition is a mapping with task_name and next"
        )
    try:
        return WorkflowDefinition.from_data(data, name=name)
    except ValueError as exc:
        raise WorkflowDefinitionError(f"{source}: invalid workflow definition: {exc}") from exc


def load_definition(path: str | os.PathLike[str]) -> WorkflowDefinition:
    """Read and validate a definition file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowDefinitionError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_definition(text, source=str(path), name=_name_of_file(path))


def _name_of_file(path: Path) -> str | None:
    """The workflow name a file gives: its stem, or a stored file's name part."""
    stem = path.name.split(".", 1)[0]
    stored = re.fullmatch(rf"(?:(.+){NAME_SEPARATOR})?[0-9a-f]{{64}}", stem)
    if stored is not None:  # a stored definition: [<name>__]<hash>
        return workflow_name(stored.group(1)) if stored.group(1) else None
    return workflow_name(stem)


VARIABLE_PREFIX = "lute_dyn_def__"
"""Every Airflow Variable holding a definition is named ``<prefix>[<name>__]<hash>``."""


def variable_key(defn: WorkflowDefinition) -> str:
    """The Airflow Variable of a definition: content-addressed, like its file."""
    return VARIABLE_PREFIX + defn.file_stem


def definition_text(defn: WorkflowDefinition) -> str:
    """What a store holds for a definition (a file's content, a Variable's value)."""
    return yaml.safe_dump(defn.to_data(), sort_keys=False)


def stored_text_definition(stem: str, text: str, source: str) -> WorkflowDefinition | None:
    """The definition stored as ``text`` under ``stem`` (``[<name>__]<hash>``).

    None when it is not a valid definition or its content does not hash to
    ``stem``: a store may hold anything, and one bad entry must not break the
    DAG factory.
    """
    match = re.fullmatch(rf"(?:(.+){NAME_SEPARATOR})?[0-9a-f]{{64}}", stem)
    if match is None:
        return None
    name = workflow_name(match.group(1)) if match.group(1) else None
    try:
        defn = parse_definition(text, source=source, name=name)
    except WorkflowDefinitionError:
        return None
    return defn if defn.file_stem == stem else None


def definitions_dir() -> Path:
    """Where stored definitions live: ``$LUTE_WORKFLOW_DEFS_DIR`` or the repo default."""
    env = os.environ.get("LUTE_WORKFLOW_DEFS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "workflows" / "airflow" / "dynamic_defs"


def store_definition(
    defn: WorkflowDefinition, directory: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``<hash>.yaml`` into ``directory`` atomically and return its path.

    Storing the same definition twice is harmless: the content and the name
    are the same, and the rename replaces the file in one step, so the DAG
    processor never sees a half-written file.
    """
    target_dir = Path(directory) if directory is not None else definitions_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{defn.file_stem}.yaml"
    text = definition_text(defn)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".yaml.part", dir=target_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def stored_definitions(
    directory: str | os.PathLike[str] | None = None,
) -> list[tuple[Path, WorkflowDefinition]]:
    """Every valid stored definition, sorted by file name.

    Files whose name is not their content hash, or that fail validation, are
    skipped: the DAG factory must never break on one bad file.
    """
    source_dir = Path(directory) if directory is not None else definitions_dir()
    if not source_dir.is_dir():
        return []
    found: list[tuple[Path, WorkflowDefinition]] = []
    for path in sorted(source_dir.glob("*.yaml")):
        try:
            defn = load_definition(path)
        except WorkflowDefinitionError:
            continue
        if defn.file_stem != path.stem:
            continue
        found.append((path, defn))
    return found
