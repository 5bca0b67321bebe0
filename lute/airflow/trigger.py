"""``JIDJobTrigger``: waits for a JID job in the triggerer, holding no worker slot.

It long-polls the JID's ``POST /wait`` (which answers as soon as the job's
status differs from the one sent, or after ``wait_timeout`` seconds), so a
status change reaches Airflow within one round trip while an idle job costs
one request per ``wait_timeout``. JID outages (connection errors, 429, 503)
are waited out with exponential backoff honouring ``Retry-After``, up to
``outage_timeout`` seconds in a row.

Given no ``job`` but the operator's options (``submit``), the trigger first
builds the control document from its task instance's context and submits it
itself: that is how a step started in the triggerer
(``JIDSlurmOperator(start_in_triggerer=True)``) runs without ever taking a
worker slot before its job ends.

Events: ``{"status": "finished", "job": doc}`` once the job is DONE, FAILED
or EXITED; ``{"status": "rendered", "rendering": {...}}`` for a dry run
started in the triggerer; ``{"status": "error", "message": str, "job": doc}``
if the JID refused the request or stayed down too long. The operator's
``execute_complete`` turns each into the task's outcome.

With ``end_from_trigger`` (the operator's default), a job that ended ``DONE``
(and a dry run started in the triggerer) ends the task here instead: the
trigger fetches the log, stores the XComs (``log``, and ``return_value`` = the
job id) through the triggerer and yields Airflow's ``TaskSuccessEvent``, so no
worker is started just to copy the log. A job that did not succeed still resumes the worker,
whose ``execute_complete`` raises with the log's last lines (and where
Airflow's retries apply as usual).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.sdk.log import mask_secret
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from lute.airflow.client import (
    NO_RETRY,
    AsyncJIDClient,
    JIDError,
    JIDUnavailableError,
    RetryPolicy,
)
from lute.airflow.control_document import (
    StepIdentity,
    build_control_document,
)
from lute.airflow.hook import JIDEndpoint, JIDHook
from lute.job_status import FINISHED_STATUSES

logger = logging.getLogger(__name__)

_REDACTED = "***"


def rendering_text(task: str, rendering: dict[str, Any]) -> str:
    """The text a dry run logs and pushes as the step's ``log``."""
    parts = [f"dry run of {task} on backend {rendering.get('backend')}:"]
    if rendering.get("argv"):
        parts.append("argv: " + json.dumps(rendering["argv"]))
    if rendering.get("script"):
        parts.append("script:\n" + str(rendering["script"]))
    return "\n".join(parts)


class JIDJobTrigger(BaseTrigger):
    """Fire once a JID job has finished (or the JID cannot be used any more)."""

    # Tests serve the JID in-process through an ASGI transport; None means real HTTP.
    transport: httpx.AsyncBaseTransport | None = None

    def __init__(
        self,
        job: dict[str, Any] | None = None,
        jid_conn_id: str = "jid_default",
        base_url: str | None = None,
        base_path: str = "/jid/ws",
        request_timeout: float = 30.0,
        token: str | None = None,
        wait_timeout: float = 30.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        outage_timeout: float | None = 3600.0,
        submit: dict[str, Any] | None = None,
        end_from_trigger: bool = False,
        push_return_value: bool = True,
    ) -> None:
        super().__init__()
        self.job = job
        # Set when the step starts in the triggerer (no job yet): the operator's
        # options; the control document is built here from the run's context.
        self.submit = submit
        self._current: dict[str, Any] | None = job
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
        # End a successful task here (TaskSuccessEvent with its XComs) rather
        # than starting a worker to do it; see the module docstring.
        self.end_from_trigger = end_from_trigger
        self.push_return_value = push_return_value

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
                "submit": self.submit,
                "end_from_trigger": self.end_from_trigger,
                "push_return_value": self.push_return_value,
            },
        )

    def __repr__(self) -> str:
        # BaseTrigger.__repr__ prints every kwarg; the token must never be logged.
        classpath, kwargs = self.serialize()
        if kwargs.get("token"):
            kwargs["token"] = _REDACTED
        if self.job:
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

    def _submission(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The control document and conf of this try, from the task instance's context."""
        ti = self.task_instance
        if ti is None or not hasattr(ti, "get_template_context"):
            raise RuntimeError("started without the task instance's context")
        context = ti.get_template_context()
        conf = dict(getattr(context.get("dag_run"), "conf", None) or {})
        options = self.submit or {}
        identity = StepIdentity.of(ti)
        doc = build_control_document(
            conf,
            ti.task_id,
            identity,
            user=options.get("user") or getpass.getuser(),
            max_cores=options.get("max_cores"),
            max_nodes=options.get("max_nodes"),
            require_partition=options.get("require_partition"),
            custom_slurm_params=options.get("custom_slurm_params") or "",
        )
        return doc, conf

    async def _submit(
        self, client: AsyncJIDClient, doc: dict[str, Any], conf: dict[str, Any]
    ) -> TriggerEvent | dict[str, Any]:
        """Submit (or, on a dry run, render) the step; an event ends the trigger early."""
        client.retry = RetryPolicy(budget_seconds=min(self.outage_timeout or 120.0, 120.0))
        try:
            if conf.get("dryrun") in (True, "true", "True", 1, "1"):
                rendering = await client.render_job(doc) or {}
                if self.end_from_trigger:
                    text = rendering_text(doc.get("def", {}).get("name", "?"), rendering)
                    if await self._push_xcoms({"log": text}):
                        self.log.info("%s", text)
                        return TaskSuccessEvent()
                return TriggerEvent({"status": "rendered", "rendering": rendering, "job": doc})
            job = await client.start_job(doc)
        except JIDError as exc:
            return TriggerEvent({"status": "error", "message": str(exc), "job": doc})
        finally:
            client.retry = NO_RETRY
        self.log.info(
            "submitted %s as job %s (%s), status %s",
            job.get("def", {}).get("name"), job.get("tool_id"), job.get("_id"),
            job.get("status"),
        )
        return job

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Submit the step if asked to, then long-poll the job until it finishes; one event."""
        conf: dict[str, Any] = {}
        job: dict[str, Any] = dict(self.job or {})
        if not self.job:
            try:
                job, conf = self._submission()
            except Exception as exc:
                yield TriggerEvent(
                    {"status": "error", "message": f"cannot build the job: {exc}", "job": {}}
                )
                return
            if conf.get("Authorization"):
                # ARP compatibility, as in the operator; masked like a password.
                self.token = str(conf["Authorization"])
                mask_secret(self.token)
            self._current = job
        try:
            client = await self.make_client()
        except Exception as exc:
            yield TriggerEvent(
                {"status": "error", "message": f"cannot set up the JID client: {exc}", "job": job}
            )
            return
        if not self.job:
            submitted = await self._submit(client, job, conf)
            if isinstance(submitted, TriggerEvent):
                await client.aclose()
                yield submitted
                return
            job = self._current = submitted
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
                job = self._current = fresh[0]
            if self.end_from_trigger and job.get("status") == "DONE":
                ending = await self._success_event(client, job)
                if ending is not None:
                    yield ending
                    return
            yield TriggerEvent({"status": "finished", "job": job})
        finally:
            await client.aclose()

    async def _success_event(
        self, client: AsyncJIDClient, job: dict[str, Any]
    ) -> TriggerEvent | None:
        """End the task here: its log (and job id) stored as XComs. None: let the worker do it."""
        client.retry = RetryPolicy(attempts=3, budget_seconds=30.0)
        try:
            log_text = await client.job_log_file(job)
        except JIDError as exc:
            # The worker path retries the fetch and records why it failed.
            self.log.warning("could not fetch the log of job %s: %s", job.get("tool_id"), exc)
            return None
        finally:
            client.retry = NO_RETRY
        if not isinstance(log_text, str):
            log_text = json.dumps(log_text)
        xcoms: dict[str, Any] = {"log": log_text}
        if self.push_return_value:
            xcoms["return_value"] = job.get("tool_id")
        if not await self._push_xcoms(xcoms):
            return None
        self.log.info(
            "job %s of %s ended %s (%s, exit code %s); log of %d characters stored in XCom",
            job.get("tool_id"), job.get("def", {}).get("name"), job.get("status"),
            job.get("raw_status"), job.get("exit_code"), len(log_text),
        )
        return TaskSuccessEvent()

    async def _push_xcoms(self, xcoms: dict[str, Any]) -> bool:
        """Store XComs of this trigger's task instance through the triggerer; False if unable.

        Not through ``TaskSuccessEvent(xcoms=...)``: Airflow 3.3 stores those
        JSON-encoded twice, so the REST API would serve the log as a quoted
        string. The Task SDK's ``XCom.set`` (which the triggerer relays) stores
        them exactly as a worker's push does.
        """
        ti = self.task_instance
        if ti is None or not getattr(ti, "run_id", None):
            return False
        try:
            from airflow.sdk.execution_time.xcom import XCom

            for key, value in xcoms.items():
                # In a thread: the Task SDK's comms then relay it through the
                # triggerer's event loop instead of blocking it.
                await asyncio.to_thread(
                    XCom.set,
                    key,
                    value,
                    dag_id=ti.dag_id,
                    task_id=ti.task_id,
                    run_id=ti.run_id,
                    map_index=-1 if getattr(ti, "map_index", None) is None else ti.map_index,
                )
        except Exception as exc:
            # Outside a triggerer (no supervisor to relay) or a refused push:
            # the worker resumes and pushes them itself.
            self.log.warning("could not store the XComs from the trigger: %s", exc)
            return False
        return True

    async def on_kill(self) -> None:
        """The user marked the deferred task failed or cleared it: cancel the job."""
        # Bounded: Airflow gives on_kill a limited time (triggerer.on_kill_timeout).
        job = self._current
        if not job:
            return
        client = await self.make_client(RetryPolicy(attempts=4, budget_seconds=20.0))
        try:
            done = await client.kill_job(job)
            self.log.info("cancelled job %s: %s", job.get("tool_id"), done.get("status"))
        finally:
            await client.aclose()
