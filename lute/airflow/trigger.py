"""``JIDJobTrigger``: waits for a JID job in the triggerer, holding no worker slot.

It long-polls the JID's ``POST /wait`` (which answers as soon as the job's
status differs from the one sent, or after ``wait_timeout`` seconds), so a
status change reaches Airflow within one round trip while an idle job costs
one request per ``wait_timeout``. JID outages (connection errors, 429, 503)
are waited out with exponential backoff honouring ``Retry-After``, up to
``outage_timeout`` seconds in a row.

Events: ``{"status": "finished", "job": doc}`` once the job is DONE, FAILED
or EXITED; ``{"status": "error", "message": str, "job": doc}`` if the JID
refused the request or stayed down too long. The operator's
``execute_complete`` turns either into the task's outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from lute.airflow.client import (
    NO_RETRY,
    AsyncJIDClient,
    JIDError,
    JIDUnavailableError,
    RetryPolicy,
)
from lute.airflow.control_document import FINISHED_STATUSES
from lute.airflow.hook import JIDEndpoint, JIDHook

logger = logging.getLogger(__name__)

_REDACTED = "***"


class JIDJobTrigger(BaseTrigger):
    """Fire once a JID job has finished (or the JID cannot be used any more)."""

    # Tests serve the JID in-process through an ASGI transport; None means real HTTP.
    transport: httpx.AsyncBaseTransport | None = None

    def __init__(
        self,
        job: dict[str, Any],
        jid_conn_id: str = "jid_default",
        base_url: str | None = None,
        base_path: str = "/jid/ws",
        request_timeout: float = 30.0,
        token: str | None = None,
        wait_timeout: float = 30.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        outage_timeout: float | None = 3600.0,
    ) -> None:
        super().__init__()
        self.job = job
        self.jid_conn_id = jid_conn_id
        self.base_url = base_url
        self.base_path = base_path
        self.request_timeout = request_timeout
        # Only set when the run's conf carried the token (ARP); otherwise the
        # triggerer reads it from the connection, so it is not stored here.
        self.token = token
        self.wait_timeout = wait_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.outage_timeout = outage_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and kwargs; Airflow stores them encrypted in its trigger table."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job": self.job,
                "jid_conn_id": self.jid_conn_id,
                "base_url": self.base_url,
                "base_path": self.base_path,
                "request_timeout": self.request_timeout,
                "token": self.token,
                "wait_timeout": self.wait_timeout,
                "initial_backoff": self.initial_backoff,
                "max_backoff": self.max_backoff,
                "outage_timeout": self.outage_timeout,
            },
        )

    def __repr__(self) -> str:
        # BaseTrigger.__repr__ prints every kwarg; the token must never be logged.
        classpath, kwargs = self.serialize()
        if kwargs.get("token"):
            kwargs["token"] = _REDACTED
        kwargs["job"] = {k: self.job.get(k) for k in ("_id", "tool_id", "status")}
        return self.repr(classpath, kwargs)

    async def _endpoint(self) -> JIDEndpoint:
        if self.base_url and self.token:
            return JIDEndpoint(self.base_url, self.base_path, self.request_timeout, self.token)
        endpoint = await JIDHook(self.jid_conn_id).aget_endpoint()
        if self.base_url:
            return JIDEndpoint(
                self.base_url, self.base_path, self.request_timeout, self.token or endpoint.token
            )
        return endpoint

    async def make_client(self, retry: RetryPolicy = NO_RETRY) -> AsyncJIDClient:
        """The asyncio client used by ``run`` (no retries: it backs off itself) and ``on_kill``."""
        endpoint = await self._endpoint()
        return AsyncJIDClient(
            endpoint.base_url,
            token=self.token or endpoint.token,
            base_path=endpoint.base_path,
            timeout=endpoint.timeout,
            retry=retry,
            transport=self.transport,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Long-poll the job until it finishes; one event, then return."""
        job = dict(self.job)
        try:
            client = await self.make_client()
        except Exception as exc:
            yield TriggerEvent(
                {"status": "error", "message": f"cannot set up the JID client: {exc}", "job": job}
            )
            return
        backoff = self.initial_backoff
        outage_started: float | None = None
        try:
            while job.get("status") not in FINISHED_STATUSES:
                try:
                    fresh = await client.wait([job], timeout=self.wait_timeout)
                except JIDUnavailableError as exc:
                    now = time.monotonic()
                    outage_started = outage_started or now
                    down_for = now - outage_started
                    if self.outage_timeout is not None and down_for >= self.outage_timeout:
                        yield TriggerEvent(
                            {
                                "status": "error",
                                "message": f"JID unavailable for {down_for:.0f} s: {exc}",
                                "job": job,
                            }
                        )
                        return
                    delay = min(max(backoff, exc.retry_after or 0.0), self.max_backoff)
                    self.log.warning("JID unavailable (%s); retrying in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                except JIDError as exc:
                    yield TriggerEvent({"status": "error", "message": str(exc), "job": job})
                    return
                outage_started = None
                backoff = self.initial_backoff
                if not fresh:
                    yield TriggerEvent(
                        {"status": "error", "message": "JID no longer knows the job", "job": job}
                    )
                    return
                if fresh[0].get("status") != job.get("status"):
                    self.log.info(
                        "job %s (%s): %s -> %s",
                        fresh[0].get("tool_id"),
                        fresh[0].get("_id"),
                        job.get("status"),
                        fresh[0].get("status"),
                    )
                job = fresh[0]
            yield TriggerEvent({"status": "finished", "job": job})
        finally:
            await client.aclose()

    async def on_kill(self) -> None:
        """The user marked the deferred task failed or cleared it: cancel the job."""
        # Bounded: Airflow gives on_kill a limited time (triggerer.on_kill_timeout).
        client = await self.make_client(RetryPolicy(attempts=4, budget_seconds=20.0))
        try:
            done = await client.kill_job(self.job)
            self.log.info("cancelled job %s: %s", self.job.get("tool_id"), done.get("status"))
        finally:
            await client.aclose()
