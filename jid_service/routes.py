"""The HTTP routes: ARP's endpoints under ``/jid/ws`` plus the extensions.

Handlers return ready JSON responses (the documents are already plain data);
``response_model`` still documents every answer in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jid_service.answers import failure, ok, retry_after_header
from jid_service.auth import Authenticator, Principal, issue_token
from jid_service.done_steps import DoneStep
from jid_service.errors import ForbiddenError, InvalidRequestError
from jid_service.models import (
    EXPERIMENT_PATTERN,
    ControlDocument,
    Envelope,
    ErrorEnvelope,
    HealthReport,
    LogRequest,
    LogSlice,
    RenderedJob,
    RunToken,
    RunTokenRequest,
    TaskDuration,
    WaitRequest,
)
from jid_service.service import JobService
from lute.job_status import JobStatus

BASE_PATH = "/jid/ws"

_bearer = HTTPBearer(auto_error=False, description="HS256 JWT: sub, experiments, admin, exp")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "the body is not valid JSON",
        401: "missing, invalid or expired token",
        403: "the token does not allow this experiment or user",
        404: "no such job",
        409: "conflicting job (same _id, other experiment; or still being submitted)",
        422: "invalid request (the error names the offending argument)",
        503: "backend or store unavailable; retry after Retry-After seconds",
    }
    return {c: {"model": ErrorEnvelope, "description": descriptions[c]} for c in codes}


def _service(request: Request) -> JobService:
    return request.app.state.service


async def _principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # read the raw header: ARP sends conf["Authorization"] verbatim
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.principal(request.headers.get("authorization"))


ServiceDep = Annotated[JobService, Depends(_service)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
ExperimentPath = Annotated[str, Path(pattern=EXPERIMENT_PATTERN, description="experiment name")]

router = APIRouter(prefix=BASE_PATH, tags=["jobs"])
_ROOT_JOB_ID_QUERY = Query(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
_JOBS_QUERY = frozenset({"arp_root_job_id", "experiment", "status", "limit"})
ops = APIRouter(tags=["operations"])


@router.post(
    "/{experiment}/start_job",
    response_model=Envelope[ControlDocument],
    responses=_errors(400, 401, 403, 409, 422, 503),
    summary="Submit a managed task (idempotent on _id)",
)
async def start_job(
    experiment: ExperimentPath, doc: ControlDocument, service: ServiceDep, principal: PrincipalDep
) -> Response:
    """Validate and submit the control document; a known ``_id`` returns the stored job."""
    return ok(await service.submissions.start_job(principal, experiment, doc))


@router.post(
    "/job_statuses",
    response_model=Envelope[list[ControlDocument]],
    responses=_errors(400, 401, 422, 503),
    summary="Fresh status of many jobs",
)
async def job_statuses(
    docs: Annotated[list[ControlDocument], Body(max_length=1000)],
    service: ServiceDep,
    principal: PrincipalDep,
) -> Response:
    """The same documents with the status the poller last saw."""
    return ok(await service.readers.statuses(principal, docs))


@router.post(
    "/{experiment}/job_log_file",
    response_model=Envelope[str],
    responses=_errors(400, 401, 403, 404, 422, 503),
    summary="The job's whole log",
)
async def job_log_file(
    experiment: ExperimentPath, doc: ControlDocument, service: ServiceDep, principal: PrincipalDep
) -> Response:
    """The job's log text (at most ``log_max_bytes``)."""
    record = await service.readers.record_for(principal, experiment, doc)
    return ok(await service.readers.whole_log(record))


@router.post(
    "/{experiment}/job_log",
    response_model=Envelope[LogSlice],
    responses=_errors(400, 401, 403, 404, 422, 503),
    summary="Read the job's log incrementally",
)
async def job_log(
    experiment: ExperimentPath, req: LogRequest, service: ServiceDep, principal: PrincipalDep
) -> Response:
    """Up to ``limit`` bytes of the log from ``offset``; continue from ``next_offset``."""
    record = await service.readers.record_for(principal, experiment, req.job)
    part = await service.readers.log_slice(record, req.offset, req.limit)
    return ok(part.model_dump())


@router.post(
    "/{experiment}/kill_job",
    response_model=Envelope[ControlDocument],
    responses=_errors(400, 401, 403, 404, 409, 422, 503),
    summary="Cancel a job",
)
async def kill_job(
    experiment: ExperimentPath, doc: ControlDocument, service: ServiceDep, principal: PrincipalDep
) -> Response:
    """Cancel the job; the answer carries status EXITED once the cancel took effect.

    Only the job's owner (the user whose token submitted it) and admins may.
    """
    record = await service.readers.record_for(principal, experiment, doc)
    principal.require_owner(record.user)
    return ok(await service.submissions.kill(record))


@router.post(
    "/{experiment}/render_job",
    response_model=Envelope[RenderedJob],
    responses=_errors(400, 401, 403, 422),
    summary="Dry run: the exact submission, nothing submitted or stored",
)
async def render_job(
    experiment: ExperimentPath, doc: ControlDocument, service: ServiceDep, principal: PrincipalDep
) -> Response:
    """The argv or batch script the backend would use for this document."""
    return ok(service.submissions.render(principal, experiment, doc).model_dump())


@router.post(
    "/{experiment}/typical_duration",
    response_model=Envelope[TaskDuration],
    responses=_errors(400, 401, 403, 422, 503),
    summary="How long this step's recent successful jobs took",
)
async def typical_duration(
    experiment: ExperimentPath, doc: ControlDocument, service: ServiceDep, principal: PrincipalDep
) -> Response:
    """Median seconds from submission to end of the newest DONE jobs (up to 5) with the
    document's ``def.name`` and ``def.parameters``; nothing is submitted.

    The operator uses it to defer at once a step that usually runs long.
    """
    return ok((await service.readers.typical_duration(principal, experiment, doc)).model_dump())


@router.post(
    "/{experiment}/done_job",
    response_model=Envelope[DoneStep],
    responses=_errors(400, 401, 403, 422, 503),
    summary="An earlier DONE job of this step that a rerun may reuse",
)
async def done_job(
    experiment: ExperimentPath, doc: ControlDocument, service: ServiceDep, principal: PrincipalDep
) -> Response:
    """The newest DONE job with the document's experiment, run, ``def.name`` and
    ``def.parameters``, submitted after its config file last changed, and its log
    (``job`` null when there is none); nothing is submitted.

    The operator asks it before submitting when the run's conf has ``jid_skip_done``.
    """
    return ok((await service.readers.done_job(principal, experiment, doc)).model_dump())


@router.post(
    "/{experiment}/run_token",
    response_model=Envelope[RunToken],
    responses=_errors(400, 401, 403, 422),
    summary="A token bound to one run (arp_root_job_id), for a DAG run's conf",
)
async def run_token(
    request: Request, experiment: ExperimentPath, req: RunTokenRequest, principal: PrincipalDep
) -> Response:
    """A token of the caller for ``experiment`` that the JID accepts only for documents
    whose ``arp_root_job_id`` is the one given, expiring after ``ttl`` seconds.

    Airflow shows a run's conf to everyone who can see the run: a token put
    there should be good for that run only. Never an admin token, and a
    run-scoped token cannot ask for another.
    """
    principal.require_experiment(experiment)
    if principal.run is not None:
        raise ForbiddenError("a run-scoped token cannot issue tokens")
    settings = request.app.state.settings
    if req.ttl > settings.run_token_max_ttl:
        raise InvalidRequestError(
            f"ttl: at most {settings.run_token_max_ttl:g} seconds (run_token_max_ttl)"
        )
    authenticator: Authenticator = request.app.state.authenticator
    token = issue_token(authenticator.signing_secret, principal.user, [experiment], req.ttl,
                        run=req.arp_root_job_id)
    return ok(RunToken(token=token, arp_root_job_id=req.arp_root_job_id,
                       expires_in=int(req.ttl)).model_dump())


@router.get(
    "/jobs",
    response_model=Envelope[list[ControlDocument]],
    responses=_errors(401, 403, 422, 503),
    summary="List stored jobs (e.g. one workflow's, by arp_root_job_id)",
)
async def list_jobs(
    request: Request,
    service: ServiceDep,
    principal: PrincipalDep,
    # plain string types in the schema (not "string or null"): a query string
    # cannot carry a null, and the parameters are simply optional
    arp_root_job_id: Annotated[str, _ROOT_JOB_ID_QUERY] = None,  # noqa: RUF013
    experiment: Annotated[str, Query(pattern=EXPERIMENT_PATTERN)] = None,  # noqa: RUF013
    status: Annotated[JobStatus, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Response:
    """Jobs of the experiments the token may see, oldest first."""
    unknown = sorted(set(request.query_params) - _JOBS_QUERY)
    if unknown:  # strict like the bodies: a misspelt filter must not list everything
        raise InvalidRequestError(f"unknown query parameter(s): {', '.join(map(repr, unknown))}")
    value = await service.readers.list_jobs(
        principal, experiment, arp_root_job_id, status.value if status else None, limit
    )
    return ok(value)


@router.post(
    "/wait",
    response_model=Envelope[list[ControlDocument]],
    responses=_errors(400, 401, 422, 503),
    summary="Long-poll until any job's status changes",
)
async def wait(req: WaitRequest, service: ServiceDep, principal: PrincipalDep) -> Response:
    """The documents with fresh status, as soon as any differs from the one sent, or at timeout."""
    return ok(await service.readers.wait(principal, req.jobs, req.timeout))


@ops.get(
    "/healthz",
    response_model=Envelope[HealthReport],
    responses={503: {"model": Envelope[HealthReport], "description": "a dependency is down"}},
    summary="Backend and store reachability",
)
async def healthz(service: ServiceDep) -> Response:
    """200 when the backend and the store answer, else 503 with Retry-After."""
    backend_ok, store_ok, detail = await service.health.health()
    report = HealthReport(backend=service.backend.name, backend_ok=backend_ok,
                          store_ok=store_ok, detail=detail, replica=service.replica.name,
                          poller="leader" if service.replica.leader else "standby").model_dump()
    if backend_ok and store_ok:
        return ok(report)
    return failure(503, detail, retry_after_header(5), value=report)


@ops.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics(service: ServiceDep) -> Response:
    """Jobs by status, backend calls and latency, request latency by route."""
    await service.refresh_job_metrics()
    return Response(service.metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
