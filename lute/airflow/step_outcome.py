"""A step's outcome once its job ended: its log, and the failure any end but DONE makes."""

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


def failure_message(task: str, job: dict[str, Any], log_text: str) -> str | None:
    """Why the step fails (its job ended other than DONE, with the log's end); None if DONE."""
    if job.get("status") == "DONE":
        return None
    return (
        f"{task} (job {job.get('tool_id')}) ended {job.get('status')}"
        f" ({job.get('raw_status')}, exit code {job.get('exit_code')}). "
        f"Last lines of its log:\n{log_tail(log_text)}"
    )
