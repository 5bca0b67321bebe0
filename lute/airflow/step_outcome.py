"""A step's outcome: its log (or a dry run's rendering), and the failure any end but DONE makes."""

from __future__ import annotations

import json
from typing import Any

from lute.airflow.client import JIDClient, JIDError

LOG_TAIL_LINES = 30
"""How many of the log's last lines a failure message carries."""


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log."""
    return "\n".join((text or "").rstrip("\n").splitlines()[-lines:])


def job_log_text(client: JIDClient, job: dict[str, Any]) -> str:
    """The job's whole log; a note saying why when the JID cannot give it."""
    try:
        text = client.job_log_file(job)
    except JIDError as exc:
        return f"(log unavailable: {exc})"
    return text if isinstance(text, str) else json.dumps(text)


def rendering_text(task: str, rendering: dict[str, Any]) -> str:
    """The text a dry run logs and pushes as the step's ``log``."""
    parts = [f"dry run of {task} on backend {rendering.get('backend')}:"]
    if rendering.get("argv"):
        parts.append("argv: " + json.dumps(rendering["argv"]))
    if rendering.get("script"):
        parts.append("script:\n" + str(rendering["script"]))
    return "\n".join(parts)


def failure_message(task: str, job: dict[str, Any], log_text: str) -> str | None:
    """Why the step fails (its job ended other than DONE, with the log's end); None if DONE."""
    if job.get("status") == "DONE":
        return None
    return (
        f"{task} (job {job.get('tool_id')}) ended {job.get('status')}"
        f" ({job.get('raw_status')}, exit code {job.get('exit_code')}). "
        f"Last lines of its log:\n{log_tail(log_text)}"
    )


TASK_LOG_LIMIT_BYTES = 64 * 1024
"""How much of a job's log (its end) is copied into the Airflow task log."""


def task_log_line(task: str, line: str) -> str:
    """One job log line as the task log shows it: prefixed ``task: `` once.

    ``lute-run-task`` already writes ``NAME: `` before each of its lines; the
    batch wrapper's own lines (and anything else) get it here.
    """
    prefix = f"{task}: "
    return line if line.startswith(prefix) else prefix + line


def task_log_lines(
    task: str, text: str, limit_bytes: int = TASK_LOG_LIMIT_BYTES
) -> list[str]:
    """The job log's lines as the task log shows them: prefixed with ``task``, bounded.

    Only the last ``limit_bytes`` bytes are kept (cut at a line start), and a
    first line says how much was left out and that XCom ``log`` has it all.
    """
    text = text or ""
    data = text.encode("utf-8", errors="replace")
    lines: list[str] = []
    if len(data) > limit_bytes:
        kept = data[-limit_bytes:].decode("utf-8", errors="ignore")
        # start at a whole line: the cut usually falls inside one
        newline = kept.find("\n")
        if newline != -1:
            kept = kept[newline + 1:]
        left_out = len(data) - len(kept.encode("utf-8"))
        skipped = text.count("\n") - kept.count("\n")
        lines.append(
            task_log_line(task, f"... first {left_out} bytes ({skipped} lines) of the job's "
                          "log left out; XCom 'log' holds all of it")
        )
        text = kept
    lines.extend(task_log_line(task, line) for line in text.rstrip("\n").splitlines())
    return lines
