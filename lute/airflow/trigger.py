"""``JIDJobTrigger``: waits for a JID job in the triggerer, holding no worker slot.

It long-polls the JID's ``POST /wait`` (which answers as soon as the job's
status differs from the one sent, or after ``wait_timeout`` seconds), so a
status change reaches Airflow within one round trip while an idle job costs
one request per ``wait_timeout``. JID outages (connection errors, 429, 503)
are waited out under the same policy as the operator's blocking wait
(:mod:`lute.airflow.job_wait`), up to ``outage_timeout`` seconds in a row.

The trigger is given the ``jid`` connection id (and, when the run's conf
carried one, that token) and resolves the JID's address through
:class:`~lute.airflow.hook.JIDHook` on the triggerer's event loop. Given no
``job`` but the operator's options (``submit``), it first builds the control
document from its task instance's context and submits it itself: that is how
a step started in the triggerer (``JIDSlurmOperator(start_in_triggerer=True)``)
runs without ever taking a worker slot before its job ends.

While it waits, the job's new log lines are written to the trigger's log
(which Airflow 3 shows in the task's log), bounded per process
(:mod:`lute.airflow.live_log`, ``log_interval``; 0: off).

Events: ``{"status": "finished", "job": doc, "log_offset": n}`` once the job
is DONE, FAILED or EXITED (``n``: where the worker's dump of the log goes
on); ``{"status": "rendered", "rendering": {...}}`` for a dry run started in
the triggerer; ``{"status": "error", "message": str, "job": doc}``
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
import importlib
import json
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from lute.airflow.client import AsyncJIDClient, JIDError, JIDUnavailableError, RetryPolicy
from lute.airflow.control_document import StepIdentity
from lute.airflow.dag_copy import release_dag_copy
from lute.airflow.done_reuse import ReusedJob, areused_job
from lute.airflow.hook import JIDEndpoint, JIDHook, conn_id_for_run
from lute.airflow.hook_fields import DEFAULT_CONN_ID
from lute.airflow.job_wait import followed, has_ended, outage_message
from lute.airflow.live_log import (
    DEFAULT_LOG_INTERVAL,
    LOG_INTERVAL_CONF_KEY,
    LiveLog,
    TriggerLiveLog,
    afinal_lines,
)
from lute.airflow.retry_policy import NO_RETRY
from lute.airflow.shared_wait import WaiterKey, shared_waiter
from lute.airflow.step_conf import conf_token, is_dry_run, seconds_for, skips_done
from lute.airflow.step_options import StepOptions
from lute.airflow.step_outcome import rendering_text

_REDACTED = "***"


_XCOM_MODULE = "airflow.sdk.execution_time.xcom"


def _xcom_class() -> Any:
    return importlib.import_module(_XCOM_MODULE).XCom


async def _xcom_class_soon() -> Any:
    """The task SDK's XCom: imported in a thread the first time, at once after that."""
    if _XCOM_MODULE in sys.modules:  # no thread hop to queue for
        return _xcom_class()
    return await asyncio.to_thread(_xcom_class)


def _error(message: str, job: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent({"status": "error", "message": message, "job": job})


def _finished(job: dict[str, Any], live: LiveLog) -> TriggerEvent:
    """The worker settles the step; its log goes on from the first line not shown."""
    return TriggerEvent({"status": "finished", "job": job, "log_offset": live.line_start,
                         "log_shown": live.shown_all})


class _Ended(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A phase of ``run`` ended the trigger early with this event."""

    def __init__(self, event: TriggerEvent) -> None:
        super().__init__()
        self.event = event


class JIDJobTrigger(BaseTrigger):
    """Fire once a JID job has finished (or the JID cannot be used any more)."""

    # Tests serve the JID in-process through an ASGI transport; None means real HTTP.
    transport: httpx.AsyncBaseTransport | None = None

    def __init__(
        self,
        job: dict[str, Any] | None = None,
        jid_conn_id: str = DEFAULT_CONN_ID,
        token: str | None = None,
        submit: StepOptions | Mapping[str, Any] | None = None,
        wait_timeout: float = 30.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        outage_timeout: float | None = 3600.0,
        end_from_trigger: bool = False,
        push_return_value: bool = True,
        log_interval: float = DEFAULT_LOG_INTERVAL,
        log_offset: int = 0,
    ) -> None:
        super().__init__()
        self.job = job
        self.jid_conn_id = jid_conn_id
        # Only set when the run's conf carried the token (ARP); otherwise the
        # triggerer reads it from the connection, so it is not stored here.
        self.token = token
        # Set when the step starts in the triggerer (no job yet): the operator's
        # options; the control document is built here from the run's context.
        self.submit = StepOptions.of(submit)
        self.wait_timeout = wait_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.outage_timeout = outage_timeout
        # End a successful task here (TaskSuccessEvent with its XComs) rather
        # than starting a worker to do it; see the module docstring.
        self.end_from_trigger = end_from_trigger
        self.push_return_value = push_return_value
        # the job's log is shown live from log_offset (lute.airflow.live_log)
        self.log_interval, self.log_offset = log_interval, log_offset
        self._current: dict[str, Any] | None = job
        self._context: Mapping[str, Any] | None = None

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render as Airflow does, and keep the context the triggerer built for this step."""
        # A step started in the triggerer gets this context before it runs,
        # built from the run's data the triggerer already holds: its document
        # is then made from it on the event loop, with no thread hop (threads
        # queue behind each other when many steps start at once).
        self._context = context
        super().render_template_fields(context, jinja_env)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and kwargs; Airflow stores them encrypted in its trigger table."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job": self.job,
                "jid_conn_id": self.jid_conn_id,
                "token": self.token,
                "submit": None if self.submit is None else self.submit.model_dump(),
                "wait_timeout": self.wait_timeout,
                "initial_backoff": self.initial_backoff,
                "max_backoff": self.max_backoff,
                "outage_timeout": self.outage_timeout,
                "end_from_trigger": self.end_from_trigger,
                "push_return_value": self.push_return_value,
                "log_interval": self.log_interval,
                "log_offset": self.log_offset,
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

    async def make_client(self, retry: RetryPolicy = NO_RETRY) -> AsyncJIDClient:
        """The asyncio client of ``run`` and ``on_kill``, for the connection's JID."""
        return await self._client_of(await self.endpoint(), retry)

    async def endpoint(self) -> JIDEndpoint:
        """The connection's JID address, with this trigger's token if it carries one.

        The connection is read with the hook's async lookup: inside the
        triggerer that asks the supervisor without blocking the event loop.
        """
        endpoint = await JIDHook(self.jid_conn_id).aget_endpoint()
        return replace(endpoint, token=self.token or endpoint.token)

    async def _client_of(
        self, endpoint: JIDEndpoint, retry: RetryPolicy = NO_RETRY
    ) -> AsyncJIDClient:
        return await endpoint.aasync_client(retry, self.transport)

    # -- run: submit -> wait -> final event ---------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Submit the step if asked to, wait for its job to end, then fire one event."""
        yield await self._outcome()

    async def _outcome(self) -> TriggerEvent:
        try:
            doc, conf = await self._step_document()
            endpoint = await self._endpoint_for(doc)
            job = doc
            if not self.job:
                async with await self._client_of(endpoint) as client:
                    job = await self._submit(client, doc, conf)
            # No client of its own while it waits: hundreds of waiting steps
            # share one (see _wait_for_end).
            live = LiveLog(job.get("def", {}).get("name", "?"), self.log_interval,
                           start=self.log_offset)
            async with TriggerLiveLog.of(live, self._key(endpoint), endpoint, self.transport,
                                         lambda: self._current, self.log):
                job = await self._wait_for_end(endpoint, job)
            if not (self.end_from_trigger and job.get("status") == "DONE"):
                return _finished(job, live)
            async with await self._client_of(endpoint) as client:
                return await self._final_event(client, job, live)
        except _Ended as ended:
            return ended.event

    async def _step_document(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The job to wait for, or the control document to submit and the run's conf."""
        if self.job:
            return dict(self.job), {}
        try:
            if self._context is not None:
                doc, conf = self._submission(self._context)
            else:
                # In a thread: building the context may ask the triggerer's
                # supervisor, which must not block the event loop.
                doc, conf = await asyncio.to_thread(self._submission)
        except Exception as exc:
            raise _Ended(_error(f"cannot build the job: {exc}", {})) from exc
        # Built: the context and the DAG copy behind it are not needed any more.
        context, self._context = self._context, None
        release_dag_copy(context, self.task_instance)
        self._current = doc
        return doc, conf

    def _submission(
        self, context: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The control document and conf of this try, from the task instance's context."""
        ti = self.task_instance
        if ti is None or not hasattr(ti, "get_template_context"):
            raise RuntimeError("started without the task instance's context")
        if context is None:
            context = ti.get_template_context()
        conf = dict(getattr(context.get("dag_run"), "conf", None) or {})
        # ARP compatibility, as in the operator; masked like a password.
        self.token = conf_token(conf) or self.token
        # started in the triggerer, no operator chose the site's connection
        self.jid_conn_id = conn_id_for_run(self.jid_conn_id, conf.get("ARP_LOCATION"))
        self.log_interval = seconds_for(conf, LOG_INTERVAL_CONF_KEY, self.log_interval)
        options = self.submit or StepOptions()
        return options.control_document(conf, ti.task_id, StepIdentity.of(ti)), conf

    async def _endpoint_for(self, doc: dict[str, Any]) -> JIDEndpoint:
        try:
            return await self.endpoint()
        except Exception as exc:
            raise _Ended(_error(f"cannot set up the JID client: {exc}", doc)) from exc

    async def _submit(
        self, client: AsyncJIDClient, doc: dict[str, Any], conf: dict[str, Any]
    ) -> dict[str, Any]:
        """Submit the step (or, on a dry run, render it and end)."""
        client = client.with_retry(
            RetryPolicy(budget_seconds=min(self.outage_timeout or 120.0, 120.0))
        )
        try:
            if is_dry_run(conf):
                raise _Ended(await self._rendered_event(client, doc))
            if skips_done(conf):
                name = doc.get("def", {}).get("name", "?")
                reused = await areused_job(client, doc, name, self.log)
                if reused is not None:
                    raise _Ended(await self._reused_event(reused, name))
            job = await client.start_job(doc)
        except JIDError as exc:
            raise _Ended(_error(str(exc), doc)) from exc
        self.log.info(
            "submitted %s as job %s (%s), status %s",
            job.get("def", {}).get("name"), job.get("tool_id"), job.get("_id"),
            job.get("status"),
        )
        self._current = job
        return job

    async def _rendered_event(self, client: AsyncJIDClient, doc: dict[str, Any]) -> TriggerEvent:
        rendering = await client.render_job(doc) or {}
        if self.end_from_trigger:
            text = rendering_text(doc.get("def", {}).get("name", "?"), rendering)
            if await self._push_xcoms({"log": text}):
                self.log.info("%s", text)
                return TaskSuccessEvent()
        return TriggerEvent({"status": "rendered", "rendering": rendering, "job": doc})

    async def _reused_event(self, reused: ReusedJob, task: str) -> TriggerEvent:
        """End the task here with the earlier job's log and id, else hand it to the worker."""
        if self.end_from_trigger:
            xcoms: dict[str, Any] = {"log": reused.log}
            if self.push_return_value:
                xcoms["return_value"] = reused.job.get("tool_id")
            if await self._push_xcoms(xcoms):
                reused.report(task, self.log)
                return TaskSuccessEvent()
        return TriggerEvent({"status": "reused", "job": reused.job, "log": reused.log})

    async def _wait_for_end(self, endpoint: JIDEndpoint, job: dict[str, Any]) -> dict[str, Any]:
        """Wait until the job has ended, riding out JID outages.

        Through the waiter this process shares for the JID (one ``/wait`` for
        every step waiting on it), not a long-poll of its own.
        """
        waiter = shared_waiter(self._key(endpoint),
                               lambda: endpoint.aasync_client(transport=self.transport))
        while not has_ended(job):
            since = time.monotonic()
            try:
                fresh = await waiter.next_change(
                    job,
                    wait_timeout=self.wait_timeout,
                    outage_timeout=self.outage_timeout,
                    initial_backoff=self.initial_backoff,
                    max_backoff=self.max_backoff,
                )
                job = self._current = followed(job, [fresh], self.log)
            except JIDUnavailableError as exc:
                raise _Ended(_error(outage_message(exc, since), job)) from exc
            except JIDError as exc:  # refused, or JobForgottenError
                raise _Ended(_error(str(exc), job)) from exc
        return job

    def _key(self, endpoint: JIDEndpoint) -> WaiterKey:
        return WaiterKey.of(
            endpoint.base_url, endpoint.base_path, endpoint.token, self.transport,
            endpoint.ca_bundle,
        )

    async def _final_event(
        self, client: AsyncJIDClient, job: dict[str, Any], live: LiveLog
    ) -> TriggerEvent:
        """The task's end if the job is DONE and ``end_from_trigger``; else the worker's event."""
        if self.end_from_trigger and job.get("status") == "DONE":
            ending = await self._success_event(client, job, live)
            if ending is not None:
                return ending
        return _finished(job, live)

    async def _success_event(
        self, client: AsyncJIDClient, job: dict[str, Any], live: LiveLog
    ) -> TriggerEvent | None:
        """End the task here: its log (and job id) stored as XComs. None: let the worker do it."""
        try:
            log_text = await client.with_retry(
                RetryPolicy(attempts=3, budget_seconds=30.0)
            ).job_log_file(job)
        except JIDError as exc:
            # The worker path retries the fetch and records why it failed.
            self.log.warning("could not fetch the log of job %s: %s", job.get("tool_id"), exc)
            return None
        if not isinstance(log_text, str):
            log_text = json.dumps(log_text)
        # The trigger's lines are part of the task's log in Airflow 3 (only
        # what the live lines did not show). Written before the XComs: the
        # triggerer drops the lines of a trigger that ended before it read them.
        for line in await afinal_lines(live, client, job, log_text):
            self.log.info("%s", line)
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
            # The first import resolves the XCom backend: in a thread.
            xcom = await _xcom_class_soon()
            for key, value in xcoms.items():
                # The asyncio push: the request goes through the Task SDK's comms on
                # this loop, and no thread waits on the supervisor's answer.
                await xcom.aset(
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
        async with await self.make_client(RetryPolicy(attempts=4, budget_seconds=20.0)) as client:
            done = await client.kill_job(job)
            self.log.info("cancelled job %s: %s", job.get("tool_id"), done.get("status"))
