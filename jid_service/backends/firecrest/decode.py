"""Reading FirecREST v2's JSON answers: jobs, states, log views, errors, health."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from jid_service.backends.base import BackendError, BackendJobState
from jid_service.backends.job_cost import CostReading, JobCost, time_between
from jid_service.backends.states import ExitCode, map_state, parse_exit_code

JOB_ID = re.compile(r"[A-Za-z0-9]+")
"""A job id as FirecREST reports it (anything else never reaches a URL)."""

# Messages of a cancel that found the job already ended.
_ALREADY_ENDED = ("already completing or completed", "invalid job id", "job not found")
# Messages of a cancel that no retry will make succeed.
_CANCEL_REFUSED = ("access/permission denied", "permission denied", "not authorized")
# How FirecREST reports a failed Slurm command (every one is a 500).
_SLURM_STDERR = re.compile(r"std_err:(?P<stderr>.*)", re.DOTALL)
_SBATCH_ERROR = "sbatch: error:"


def _body(resp: httpx.Response) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = resp.json()
        if isinstance(body, dict):
            return body
    return {}


def _causes(body: Mapping[str, Any]) -> list[str]:
    causes = body.get("causedBy")
    if not isinstance(causes, list):
        return []
    texts = []
    for cause in causes:
        if isinstance(cause, Mapping):
            cause = cause.get("message") or cause.get("detail") or ""
        if cause:
            texts.append(str(cause))
    return texts


def error_message(resp: httpx.Response) -> str:
    """FirecREST's ``message`` (or FastAPI's ``detail``), whitespace kept, else the body."""
    body = _body(resp)
    message = body.get("message") or body.get("detail") or body.get("error") or ""
    if not isinstance(message, str):
        message = str(message)  # a validation error's detail is a list
    return message or resp.text


def error_text(resp: httpx.Response) -> str:
    """``HTTP 400: message (caused by: ...)`` from FirecREST's error body, on one line."""
    message = " ".join(error_message(resp).split())[:300]
    causes = [" ".join(c.split())[:200] for c in _causes(_body(resp))]
    if causes:
        message = f"{message} (caused by: {'; '.join(causes)})"
    return f"HTTP {resp.status_code}: {message}" if message else f"HTTP {resp.status_code}"


def sbatch_refusal(resp: httpx.Response) -> str | None:
    """sbatch's own error lines when FirecREST says sbatch refused the job, else None.

    FirecREST answers ``500 Unexpected Slurm command response. exit_status:1
    std_err:sbatch: error: ...``: a definite refusal, not an outage.
    """
    message = error_message(resp)
    if _SBATCH_ERROR not in message:
        return None
    found = _SLURM_STDERR.search(message)
    stderr = found.group("stderr") if found else message
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "; ".join(lines)[:500] or message[:500]


def rejection(resp: httpx.Response) -> str | None:
    """Why a submit answer is a definite refusal (nothing was submitted), else None.

    Definite: request validation (400, 422), QOS/association limits (403), an
    unknown system (404), and any answer carrying ``sbatch: error:``.
    """
    refusal = sbatch_refusal(resp)
    if refusal is not None:
        return f"sbatch refused the job: {refusal}"
    if resp.status_code in (400, 403, 404, 422):
        return error_text(resp)
    return None


def cancel_refused(resp: httpx.Response) -> bool:
    """Whether a cancel's error answer is one that no retry will change."""
    text = error_text(resp).lower()
    return any(marker in text for marker in _CANCEL_REFUSED)


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


def _seconds(value: Any) -> float | None:
    """A number of FirecREST's ``time`` object (or slurmrestd's ``{"set", "number"}``)."""
    if isinstance(value, Mapping):
        value = value.get("number") if value.get("set", True) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def job_cost(tool_id: str, job: Mapping[str, Any]) -> CostReading:
    """What a job of FirecREST v2's job model cost: its ``time`` and ``status``.

    ``time`` holds ``elapsed`` (seconds), ``start`` and ``end`` (Unix seconds;
    0 while unset), ``suspended`` and ``limit``; a ``submission`` time, where
    a server sends one, gives the queue wait. FirecREST reports no memory or
    CPU use: those stay unknown. Settled once the job has ended.
    """
    times = job.get("time")
    times = times if isinstance(times, Mapping) else {}
    submitted, started, ended = (_seconds(times.get(key)) or None
                                 for key in ("submission", "start", "end"))
    elapsed = _seconds(times.get("elapsed"))
    status = job.get("status")
    state = job_state(tool_id, status if isinstance(status, Mapping) else {})
    cost = JobCost(
        queue_wait_seconds=time_between(submitted, started),
        run_seconds=elapsed if elapsed is not None else time_between(started, ended),
        exit_code=state.exit_code,
    )
    return CostReading(cost=cost, settled=state.status.finished and ended is not None)


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
