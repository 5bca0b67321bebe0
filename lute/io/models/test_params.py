"""Parameter models of the built-in test Tasks."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator

from lute.io.models.base import (
    TaskParameters,
    input_path,
    output_path,
    recorded_output,
    work_dir_of,
)


class CompoundVar(TaskParameters):
    """A nested block, to show nested parameters and ``{{ Task.a.b }}`` references."""

    int_var: int = 1
    dict_var: dict[str, Any] = Field(default_factory=lambda: {"a": "b"})


class TestParameters(TaskParameters):
    """``Test``: logs its parameters; fails on purpose when ``throw_error`` is set."""

    float_var: float = 0.01
    str_var: str = "test"
    compound_var: CompoundVar = Field(default_factory=CompoundVar)
    throw_error: bool = False


class TestSocketParameters(TaskParameters):
    """``TestSocket``: sends ``num_arrays`` float64 arrays back as one result payload."""

    array_size: int = Field(655_360, gt=0, description="floats per array")
    num_arrays: int = Field(2, gt=0)


class TestWriteOutputParameters(TaskParameters):
    """``TestWriteOutput``: writes a small text table whose path it records."""

    out_file: str | None = None
    num_lines: int = Field(100, ge=1)

    @field_validator("out_file", mode="after")
    @classmethod
    def _default_out_file(cls, value: str | None, info: ValidationInfo) -> str:
        return output_path(info, value, "test_output.txt")


class TestReadOutputParameters(TaskParameters):
    """``TestReadOutput``: reads what ``TestWriteOutput`` recorded (by default)."""

    in_file: str | None = None

    @field_validator("in_file", mode="after")
    @classmethod
    def _default_in_file(cls, value: str | None, info: ValidationInfo) -> str:
        if value is not None:
            return input_path(info, value) or value
        return recorded_output(info, "TestWriteOutput", "out_file") or ""


class TestBinaryParameters(TaskParameters):
    """``TestBinary``: runs a real program through ThirdPartyTask's argv builder.

    Fields with ``flag`` metadata become command-line flags; ``positional``
    ones are appended in field order. The Jinja2 template (when
    ``template_output`` is set) is rendered first, and its path can be listed.
    """

    template_name: ClassVar[str | None] = "test_binary.txt.j2"

    executable: str = "/bin/ls"
    long_format: bool = Field(True, json_schema_extra={"flag": "-l"})
    show_all: bool = Field(False, json_schema_extra={"flag": "-a"})
    path: str | None = Field(None, json_schema_extra={"positional": True})
    template_output: str | None = None
    template_values: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path", mode="after")
    @classmethod
    def _default_path(cls, value: str | None, info: ValidationInfo) -> str:
        return input_path(info, value) or str(work_dir_of(info))

    @field_validator("template_output", mode="after")
    @classmethod
    def _resolve_template_output(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else output_path(info, value, "unused")


class SleepParameters(TaskParameters):
    """``Sleep``: sleeps, printing a line every ``print_interval`` seconds."""

    seconds: float = Field(1.0, ge=0)
    print_interval: float | None = Field(None, gt=0)
