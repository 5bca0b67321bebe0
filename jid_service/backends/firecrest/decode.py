"""Reading FirecREST v2's JSON answers: jobs, states, log views, errors, health."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from jid_service.backends.base import BackendError, BackendJobState
from jid_service.backends.states import ExitCode, map_state, parse_exit_code

JOB_ID = re.compile(r"[A-Za-z0-9]+")
"""A job id as FirecREST reports it (anything else never reaches a URL)."""

# Messages of a cancel that found the job already ended.
_ALREADY_ENDED = ("already completing or completed", "invalid job id", "job not found")


def error_text(resp: httpx.Response) -> str:
    """``HTTP 400: message`` from FirecREST's ``{"errorType", "message"}`` (or FastAPI's detail)."""
    message = ""
    with contextlib.suppress(ValueError):
        body = resp.json()
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("detail") or body.get("error") or "")
    if not message:
        message = resp.text
    message = " ".join(message.split())[:300]
    return f"HTTP {resp.status_code}: {message}" if message else f"HTTP {resp.status_code}"


def mentions_ended(resp: httpx.Response) -> bool:
    """Whether an error answer says the job had already ended."""
    text = error_text(resp).lower()
    return any(marker in text for marker in _ALREADY_ENDED)


def json_body(what: str, resp: httpx.Response) -> Any:
    """The answer's JSON; BackendError when it is not JSON."""
    try:
        return resp.json()
    except ValueError as err:
        raise BackendError(f"FirecREST {what}: the answer is not JSON") from err


def listed_jobs(data: Any) -> list[dict[str, Any]]:
    """The job objects of a ``{"jobs": [...]}`` answer (listing, lookup or metadata)."""
    jobs = data.get("jobs") if isinstance(data, dict) else None
    return [job for job in jobs or [] if isinstance(job, dict)]


def newest_job_id(ids: Iterable[str]) -> str | None:
    """The newest of the valid job ids (numeric order), or None."""
    valid = [job_id for job_id in ids if JOB_ID.fullmatch(job_id)]
    return max(valid, key=lambda j: (len(j), j)) if valid else None


def submitted_job_id(data: Any) -> str:
    """The ``jobId`` of a submission's answer; BackendError when there is none."""
    job_id = data.get("jobId") if isinstance(data, dict) else None
    if job_id is None or not JOB_ID.fullmatch(str(job_id)):
        raise BackendError(f"FirecREST accepted the job but sent no job id: {data!r:.200}")
    return str(job_id)


def job_state(tool_id: str, status: Mapping[str, Any]) -> BackendJobState:
    """A FirecREST ``status`` object (``state``, ``exitCode``, ``interruptSignal``) as a state."""
    raw = status.get("state")
    if isinstance(raw, list):  # slurmrestd-style flag lists
        raw = ",".join(str(part) for part in raw)
    mapped = map_state(None if raw is None else str(raw))
    exit_code: int | None = None
    if mapped.status.finished:
        parsed = parse_exit_code(status.get("exitCode"))
        signal = status.get("interruptSignal")
        if isinstance(signal, int) and not isinstance(signal, bool) and signal > 0:
            parsed = ExitCode(parsed.returncode if parsed else 0, signal)
        exit_code = parsed.code if parsed else None
    return BackendJobState(
        tool_id=tool_id, status=mapped.status, raw_status=mapped.raw, exit_code=exit_code
    )


def listed_state(data: Any, tool_id: str) -> BackendJobState | None:
    """The state of ``tool_id`` in a job listing or lookup answer, if it is there."""
    for job in listed_jobs(data):
        if str(job.get("jobId", "")) == tool_id:
            return job_state(tool_id, job.get("status") or {})
    return None


def standard_output(data: Any, tool_id: str) -> str | None:
    """The log file of ``tool_id`` from a job metadata answer (``%j`` filled in)."""
    for job in listed_jobs(data):
        if job.get("standardOutput"):
            return str(job["standardOutput"]).replace("%j", tool_id)
    return None


def view_text(data: Any) -> str:
    """The text of an ``ops/view`` answer.

    Older servers send ``{"output": "text"}``, newer ``{"output": {"content": "text", ...}}``.
    """
    output = data.get("output") if isinstance(data, dict) else None
    if isinstance(output, dict):
        output = output.get("content")
    return output if isinstance(output, str) else ""


def system_problem(data: Any, system: str) -> str | None:
    """What is wrong with ``system`` in a ``GET /status/systems`` answer; None if healthy."""
    systems = data.get("systems") if isinstance(data, dict) else None
    entry = next(
        (s for s in systems or [] if isinstance(s, dict) and s.get("name") == system), None
    )
    if entry is None:
        return f"FirecREST does not offer the system {system!r}"
    for service in entry.get("servicesHealth") or []:
        if (
            isinstance(service, dict)
            and service.get("serviceType") == "scheduler"
            and service.get("healthy") is False
        ):
            detail = service.get("message") or "no detail"
            return f"FirecREST reports the scheduler of {system!r} unhealthy: {detail}"
    return None
