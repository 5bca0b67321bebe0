"""How one execution of a Task ended: the Outcome, and how it follows from the process.

EXIT_* are ``lute-run-task``'s exit statuses (128+N when cancelled by signal N).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_TIMEDOUT = 124


@dataclass
class Outcome:
    """How one execution ended."""

    status: str
    exit_code: int
    run_id: int | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    payload_path: str | None = None
    payload_bytes: int | None = None
    skipped: bool = False


@dataclass
class ChildState:
    """What the receiver thread collected from the Task process."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    payload_path: Path | None = None
    payload_bytes: int = 0
    channel_error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)


def outcome_of(
    returncode: int | None,
    state: ChildState,
    cancel_signal: int | None,
    timed_out: bool,
    timeout: float | None,
) -> Outcome:
    """The Outcome of a Task process that ended with ``returncode`` (-N: killed by N).

    A forwarded cancel signal wins over a timeout, which wins over what the
    process reported.
    """
    rc = -1 if returncode is None else returncode
    result = state.result or {}
    common: dict[str, Any] = {
        "summary": result.get("summary"),
        "outputs": result.get("outputs"),
        "payload_path": str(state.payload_path) if state.payload_path else None,
        "payload_bytes": state.payload_bytes or None,
    }
    if cancel_signal is not None:
        name = signal.Signals(cancel_signal).name
        return Outcome(
            "CANCELLED",
            128 + cancel_signal,
            error=f"cancelled by {name} (forwarded to the Task)",
            **common,
        )
    if timed_out:
        return Outcome(
            "TIMEDOUT",
            EXIT_TIMEDOUT,
            error=f"killed after task_timeout of {timeout:g} s",
            **common,
        )
    if rc == 0 and state.result is not None and not state.channel_error:
        return Outcome("COMPLETED", EXIT_OK, **common)
    if state.error is not None:
        error = str(state.error.get("error"))
    elif state.channel_error:
        error = state.channel_error
    elif rc < 0:
        error = f"Task process killed by {signal.Signals(-rc).name}"
    elif rc == 0:
        error = "Task process exited without sending a result"
    else:
        error = f"Task process exited with code {rc}"
    return Outcome("FAILED", EXIT_FAILED, error=error, **common)
