"""The JID client's error decoding and retries, against the real JID app in-process."""

from __future__ import annotations

import time

import httpx
import pytest

from lute.airflow.client import (
    AsyncJIDClient,
    JIDAuthError,
    JIDNotFoundError,
    JIDUnavailableError,
    JIDValidationError,
    RetryPolicy,
    bearer,
    parse_retry_after,
)
from lute.airflow.control_document import StepIdentity, build_control_document
from tests.unit.airflow.support import in_process_jid, run_conf

pytestmark = pytest.mark.timeout(120)

BASE = "http://jid.test"


def _client(jid, token: str | None = None, **kw) -> AsyncJIDClient:
    return AsyncJIDClient(
        BASE,
        token=jid.token if token is None else token,
        transport=httpx.ASGITransport(app=jid.asgi),
        **kw,
    )


def _doc(jid, task: str = "Tester", **conf_changes) -> dict:
    return build_control_document(
        run_conf(jid.config, **conf_changes),
        task,
        StepIdentity("lute_unit", "r1", task, 1),
        user="tester",
    )


async def test_start_job_is_idempotent_on_the_id(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid, _client(jid) as client:
        doc = _doc(jid)
        first = await client.start_job(doc)
        again = await client.start_job(doc)
        listed = await client.request("GET", "jobs", None)
    assert first["tool_id"] == again["tool_id"]
    assert [d["_id"] for d in listed].count(doc["_id"]) == 1


async def test_refused_tokens_are_auth_errors(tmp_path) -> None:
    from jid_service.auth import issue_token

    async with in_process_jid(tmp_path) as jid:
        async with _client(jid, token="garbage") as client:
            with pytest.raises(JIDAuthError) as info:
                await client.start_job(_doc(jid))
        assert info.value.status_code == 401
        assert "garbage" not in str(info.value)
        other = issue_token(jid.secret, "someone", ["otherexp"], 600)
        async with _client(jid, token=other) as client:
            with pytest.raises(JIDAuthError) as info:
                await client.start_job(_doc(jid))
        assert info.value.status_code == 403


async def test_invalid_documents_are_validation_errors(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid, _client(jid) as client:
        with pytest.raises(JIDValidationError, match="NoSuchTask"):
            await client.start_job(_doc(jid, task="NoSuchTask"))
        bad_slurm = _doc(jid, slurm_params=["--wrap=rm -rf /"])
        with pytest.raises(JIDValidationError):
            await client.start_job(bad_slurm)
        listed = await client.request("GET", "jobs", None)
    assert listed == []


async def test_unknown_job_is_not_found(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid, _client(jid) as client:
        with pytest.raises(JIDNotFoundError):
            await client.job_log_file(_doc(jid))


async def test_503_is_retried_honouring_retry_after(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid:
        jid.asgi.retry_after = "0.3"
        jid.asgi.fail(lambda path: path.endswith("/start_job"), count=2)
        policy = RetryPolicy(attempts=5, budget_seconds=30, initial_backoff=0.01)
        async with _client(jid, retry=policy) as client:
            started = time.monotonic()
            job = await client.start_job(_doc(jid))
            elapsed = time.monotonic() - started
    assert jid.asgi.refused == 2
    assert job["tool_id"]
    # Two refusals, each answered after the server's Retry-After, not the 10 ms backoff.
    assert elapsed >= 0.6


async def test_persistent_503_ends_as_unavailable(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid:
        jid.asgi.fail(lambda path: True, count=100)
        policy = RetryPolicy(attempts=3, budget_seconds=30, initial_backoff=0.01)
        async with _client(jid, retry=policy) as client:
            with pytest.raises(JIDUnavailableError) as info:
                await client.start_job(_doc(jid))
    assert jid.asgi.refused == 3
    assert info.value.status_code == 503


class _ProxyGateway(httpx.AsyncBaseTransport):
    """A reverse proxy in front of the JID: its first answers are its own 502/504 pages."""

    def __init__(self, upstream: httpx.AsyncBaseTransport, statuses: list[int]) -> None:
        self.upstream = upstream
        self.statuses = list(statuses)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.statuses:
            status = self.statuses.pop(0)
            return httpx.Response(status, text="<html>Bad Gateway</html>", request=request)
        return await self.upstream.handle_async_request(request)


async def test_proxy_gateway_errors_are_retried_as_outages(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid:
        gateway = _ProxyGateway(httpx.ASGITransport(app=jid.asgi), [502, 504])
        policy = RetryPolicy(attempts=5, budget_seconds=30, initial_backoff=0.01)
        async with AsyncJIDClient(BASE, token=jid.token, transport=gateway,
                                  retry=policy) as client:
            job = await client.start_job(_doc(jid))
        assert gateway.statuses == []
        assert job["tool_id"]
        gateway = _ProxyGateway(httpx.ASGITransport(app=jid.asgi), [502] * 5)
        async with AsyncJIDClient(BASE, token=jid.token, transport=gateway,
                                  retry=RetryPolicy(attempts=2, budget_seconds=5,
                                                    initial_backoff=0.01)) as client:
            with pytest.raises(JIDUnavailableError) as info:
                await client.start_job(_doc(jid))
    assert info.value.status_code == 502


async def test_connection_refused_is_unavailable_after_retries() -> None:
    policy = RetryPolicy(attempts=2, budget_seconds=5, initial_backoff=0.01)
    # Port 9 on loopback: nothing listens there.
    async with AsyncJIDClient("http://127.0.0.1:9", token="t", retry=policy) as client:
        with pytest.raises(JIDUnavailableError, match="cannot reach"):
            await client.job_statuses([])


def test_headers_and_retry_after_parsing() -> None:
    assert bearer("abc") == "Bearer abc"
    assert bearer("Bearer abc") == "Bearer abc"
    assert bearer(None) is None
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_repr_hides_token() -> None:
    client = AsyncJIDClient(BASE, token="s3cret")
    assert "s3cret" not in repr(client)


async def test_typical_duration_is_a_hint_from_done_jobs(tmp_path) -> None:
    async with in_process_jid(tmp_path) as jid, _client(jid) as client:
        doc = _doc(jid)
        assert await client.typical_duration(doc) is None  # no history yet
        job = await client.start_job(doc)
        while job["status"] not in ("DONE", "FAILED", "EXITED"):
            job = (await client.wait([job], timeout=5))[0]
        assert job["status"] == "DONE"
        seconds = await client.typical_duration(doc)
        assert seconds is not None and 0 < seconds < 60
        jid.asgi.fail(lambda path: path.endswith("/typical_duration"), 5)
        with pytest.raises(JIDUnavailableError):  # one attempt, no retries
            await client.typical_duration(doc)
        assert jid.asgi.refused == 1


async def test_both_clients_have_every_endpoint(tmp_path) -> None:
    from lute.airflow.client import JIDClient

    names = (
        "request", "start_job", "job_statuses", "job_log_file", "job_log", "kill_job",
        "render_job", "typical_duration", "wait", "healthz",
    )
    with JIDClient(BASE) as blocking:
        assert all(callable(getattr(blocking, name)) for name in names)
    assert all(callable(getattr(AsyncJIDClient(BASE), name)) for name in names)
    # The asyncio client answers the endpoints it once lacked.
    async with in_process_jid(tmp_path) as jid, _client(jid) as client:
        assert await client.healthz()
        job = await client.start_job(_doc(jid))
        while job["status"] not in ("DONE", "FAILED", "EXITED"):
            job = (await client.wait([job], timeout=5))[0]
        chunk = await client.job_log(job)
    assert chunk["complete"] is True
    assert chunk["text"]
