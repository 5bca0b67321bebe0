"""``JIDSlurmOperator``: run one managed task on the batch nodes through the JID.

The operator builds the control document from ``dag_run.conf`` (see
:mod:`lute.airflow.control_document`), submits it, and then defers to
:class:`~lute.airflow.trigger.JIDJobTrigger` so a waiting job holds no worker
slot. With ``deferrable=False`` it long-polls the JID itself. When the job
has ended it pushes the job's log to XCom key ``log`` and fails unless the job
is ``DONE``.

``conf["dryrun"]`` asks the JID to render the submission instead (logged and
pushed as the ``log``), and the step succeeds without running anything.

Latency: a deferral costs seconds (Airflow's triggerer picks up new triggers
and reports events on a one-second cycle, and resuming needs a new worker
process), which dwarfs a short job. So the operator first waits up to
``defer_after`` seconds in the worker and defers only if the job is still
running, and a job that ends ``DONE`` while deferred ends the task from the
trigger (``end_from_trigger``: the log travels as the event's XCom), so no
worker is started just to copy it. See ``docs/airflow.md`` for the figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from airflow.triggers.base import StartTriggerArgs

from lute.airflow.client import JIDClient, JIDError, RetryPolicy
from lute.airflow.control_document import ControlDocumentError, StepIdentity, managed_task_name
from lute.airflow.done_reuse import ReusedJob, reused_job
from lute.airflow.hook import JIDEndpoint, JIDHook, conn_id_for_run
from lute.airflow.hook_fields import DEFAULT_CONN_ID
from lute.airflow.job_wait import WaitFailedError, has_ended, poll_seconds, wait_in_worker
from lute.airflow.live_log import DEFAULT_LOG_INTERVAL, LOG_INTERVAL_CONF_KEY, LiveLog, final_lines
from lute.airflow.slot_pressure import steps_waiting_for_a_slot
from lute.airflow.step_conf import (
    DEFER_AFTER_CONF_KEY,
    conf_token,
    defer_after_for,
    deferrable_for,
    inline_wait,
    is_dry_run,
    seconds_for,
    skips_done,
)
from lute.airflow.step_options import StepOptions
from lute.airflow.step_outcome import failure_message, job_log_text, rendering_text
from lute.airflow.step_outcome import log_tail as log_tail  # re-exported
from lute.airflow.trigger import JIDJobTrigger
from lute.airflow.trigger_end import EndFromTriggerOption, ending_from_trigger_allowed

DEFAULT_DEFER_AFTER = 1.0
"""Seconds a deferrable step waits in the worker before deferring (see ``defer_after``)."""


class JIDSlurmOperator(EndFromTriggerOption, BaseOperator):
    """Submit a LUTE managed task through the JID and wait for it.

    :param max_cores: cap ``--ntasks`` at this (added as ``--ntasks=1`` if absent).
    :param max_nodes: cap ``--nodes`` as ``1-N`` (added if absent).
    :param require_partition: force ``--partition``.
    :param custom_slurm_params: if non-empty, replaces ALL the run's Slurm arguments.
    :param poke_interval: longest single wait on the JID (long-poll timeout), seconds.
    :param deferrable: wait in the triggerer (True) or in the worker (False).
    :param jid_conn_id: the ``jid`` connection; by default the run's site's
        (``jid_<ARP_LOCATION>``, lower-cased) where one is defined, else ``jid_default``.
    :param user: ``def.run_as_user``; default the account Airflow runs as.
    :param outage_timeout: how long a JID outage may last before the step fails.
    :param start_in_triggerer: start the step in the triggerer (Airflow's
        ``start_from_trigger``): no worker slot at all for a job that ends
        ``DONE``. The run's ``jid_deferrable`` and ``jid_defer_after`` keys do
        not apply, and Slurm options are not templated in this mode.
    :param defer_after: a deferrable step first waits this many seconds in the
        worker and defers only if its job is still running then, so a short job
        never pays the round trip through the triggerer (0: defer at once). The
        run's conf key ``jid_defer_after`` overrides it. Without that key, a
        step defers at once while other steps of its DAG run wait for a worker
        slot, or when its managed task's recent jobs took ``defer_after`` + 5 s
        or more (the JID's ``typical_duration``).
    :param end_from_trigger: a deferred job that ends ``DONE`` ends the task
        from the trigger (its log and job id are pushed as XComs with the
        event), without starting a worker to resume the task. Other outcomes
        always resume in the worker, which raises with the log's last lines.
        Where Airflow has listener plugins (which it refuses with this), the
        step ends in the worker instead.
    :param log_interval: while the job runs, its new log lines are copied into
        the task log every this many seconds (at least 1; 0: only at the end).
        The run's conf key ``jid_log_interval`` overrides it.
    """

    ui_color = "#006699"
    # The token is never a templated field; only Slurm options are rendered.
    template_fields = ("custom_slurm_params", "require_partition")

    def __init__(
        self,
        *,
        max_cores: int | None = None,
        max_nodes: int | None = None,
        require_partition: str | None = None,
        custom_slurm_params: str = "",
        poke_interval: float = 30.0,
        deferrable: bool = True,
        jid_conn_id: str = DEFAULT_CONN_ID,
        user: str | None = None,
        outage_timeout: float = 3600.0,
        start_in_triggerer: bool = False,
        defer_after: float = DEFAULT_DEFER_AFTER,
        end_from_trigger: bool = True,
        log_interval: float = DEFAULT_LOG_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_cores = max_cores
        self.max_nodes = max_nodes
        self.require_partition = require_partition
        self.custom_slurm_params = custom_slurm_params
        self.poke_interval = poke_interval
        self.deferrable = deferrable
        self.jid_conn_id = jid_conn_id
        self.user = user
        self.outage_timeout = outage_timeout
        if defer_after < 0:
            raise ValueError(f"defer_after must be >= 0, not {defer_after}")
        self.defer_after = float(defer_after)
        self.end_from_trigger = end_from_trigger
        self.log_interval = max(0.0, float(log_interval))
        self._job: dict[str, Any] | None = None
        self._token: str | None = None
        self._endpoint: JIDEndpoint | None = None
        self._conn_id: str | None = None
        if start_in_triggerer:
            # Airflow 3 then defers the step as soon as it is scheduled: the
            # trigger builds the document from the run's context and submits it,
            # and a worker is only needed to settle the outcome.
            self.start_from_trigger = True
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls=f"{JIDJobTrigger.__module__}.{JIDJobTrigger.__qualname__}",
                # built while the DAG file is parsed: ask only a listener
                # manager Airflow built already (loading plugins here would
                # slow every parse)
                trigger_kwargs=self._trigger_kwargs(
                    job=None, token=None,
                    end_from_trigger=end_from_trigger and ending_from_trigger_allowed(load=False),
                ),
                next_method="execute_complete",
                next_kwargs=None,
                timeout=None,
            )

    @property
    def lute_task_id(self) -> str:
        """The managed task this step runs: the task id without its task-group prefix."""
        return managed_task_name(self.task_id)

    @property
    def options(self) -> StepOptions:
        """The options that shape this step's job (Slurm ones as rendered, once rendered)."""
        return StepOptions(
            max_cores=self.max_cores,
            max_nodes=self.max_nodes,
            require_partition=self.require_partition,
            custom_slurm_params=self.custom_slurm_params,
            user=self.user,
        )

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _conf(context: Mapping[str, Any]) -> dict[str, Any]:
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        return dict(conf)

    def _client(self, conf: Mapping[str, Any]) -> JIDClient:
        if self._endpoint is None:
            try:
                self._conn_id = conn_id_for_run(self.jid_conn_id, conf.get("ARP_LOCATION"))
            except ValueError as exc:
                raise AirflowException(str(exc)) from None
            self.log.info("JID connection %s", self._conn_id)
            self._endpoint = JIDHook(self._conn_id).get_endpoint()
        self._token = conf_token(conf) or self._endpoint.token
        return self._endpoint.client(token=self._token)

    def control_document(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The control document of this try of this step."""
        identity = StepIdentity.of(context["ti"])
        try:
            return self.options.control_document(self._conf(context), self.task_id, identity)
        except ControlDocumentError as exc:
            raise AirflowException(str(exc)) from exc

    def _defer_after_for(self, conf: Mapping[str, Any]) -> float:
        try:
            return defer_after_for(conf, self.defer_after)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None

    def _live(self, conf: Mapping[str, Any], start: int = 0, shown_all: bool = False) -> LiveLog:
        """What this step shows of its job's log while it waits, from byte ``start``."""
        try:
            interval = seconds_for(conf, LOG_INTERVAL_CONF_KEY, self.log_interval)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        return LiveLog(self.lute_task_id, interval, start=start, shown_all=shown_all)

    def _trigger_kwargs(
        self, job: dict[str, Any] | None, token: str | None,
        end_from_trigger: bool | None = None, live: LiveLog | None = None,
    ) -> dict[str, Any]:
        """The trigger's kwargs: wait for ``job``, or (None) submit this step's job first."""
        if end_from_trigger is None:
            end_from_trigger = self.end_from_trigger
        return {
            "job": job,
            "jid_conn_id": self._conn_id or self.jid_conn_id,
            "token": token,
            "submit": self.options.model_dump() if job is None else None,
            "wait_timeout": poll_seconds(self.poke_interval),
            "outage_timeout": self.outage_timeout,
            "end_from_trigger": end_from_trigger,
            "push_return_value": self.do_xcom_push,
            "log_interval": self.log_interval if live is None else live.interval,
            "log_offset": 0 if live is None else live.line_start,
        }

    # -- execution -------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        """Render the step on a dry run; else run it waiting in the worker or deferring."""
        conf = self._conf(context)
        doc = self.control_document(context)
        with self._client(conf) as client:
            if is_dry_run(conf):
                return self._dry_run(client, doc, context)
            task = self.lute_task_id
            if skips_done(conf) and (reused := reused_job(client, doc, task, self.log)):
                return reused.finish(task, self.log, context["ti"])
            live = self._live(conf)
            if deferrable_for(conf, self.deferrable):
                return self.execute_async(context, client, doc, conf, live)
            return self.execute_sync(context, client, doc, live)

    def execute_sync(
        self, context: Any, client: JIDClient, doc: dict[str, Any], live: LiveLog
    ) -> Any:
        """Submit the job and wait for its end in the worker, showing its log as it comes."""
        job = self._wait_blocking(client, self._submit(client, doc), live)
        return self._finish(client, job, context, live)

    def execute_async(
        self, context: Any, client: JIDClient, doc: dict[str, Any], conf: Mapping[str, Any],
        live: LiveLog,
    ) -> Any:
        """Submit the job, wait up to ``defer_after`` in the worker, then defer if it runs on."""
        job = self._submit(client, doc)
        if not has_ended(job):
            seconds = self._inline_wait_for(client, job, conf, context)
            job = self._wait_inline(client, job, seconds, live)
        if not has_ended(job):
            self.defer(
                trigger=JIDJobTrigger(**self._trigger_kwargs(job, conf_token(conf), live=live)),
                method_name="execute_complete",
                timeout=self.execution_timeout
                if isinstance(self.execution_timeout, timedelta) else None,
            )
        return self._finish(client, job, context, live)

    def _submit(self, client: JIDClient, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            job = client.start_job(doc)
        except JIDError as exc:
            raise AirflowException(f"JID refused {self.lute_task_id}: {exc}") from exc
        self._job = job
        self.log.info(
            "submitted %s as job %s (%s), status %s",
            self.lute_task_id, job.get("tool_id"), job.get("_id"), job.get("status"),
        )
        return job

    def _inline_wait_for(
        self, client: JIDClient, job: dict[str, Any], conf: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> float:
        """Seconds to wait in the worker: the conf's or ``defer_after``; 0 when the
        slot is wanted by other steps of the run or the task usually runs long."""
        if conf.get(DEFER_AFTER_CONF_KEY) is not None or self.defer_after == 0:
            return self._defer_after_for(conf)
        if context is not None and (waiting := steps_waiting_for_a_slot(context, self.log)):
            self.log.info("%d steps of this run wait for a worker slot: deferring at once",
                          waiting)
            return 0.0
        try:
            typical = client.typical_duration(job)
        except JIDError as exc:  # a JID without the figure, or trouble: no hint
            self.log.info("no typical duration of %s (%s)", self.lute_task_id, exc)
            return self.defer_after
        seconds = inline_wait(self.defer_after, typical)
        if seconds == 0 and typical is not None:
            self.log.info("%s usually takes %.1f s: deferring at once", self.lute_task_id, typical)
        return seconds

    def _wait_inline(
        self, client: JIDClient, job: dict[str, Any], seconds: float, live: LiveLog
    ) -> dict[str, Any]:
        """Long-poll for up to ``seconds`` before deferring; the freshest document seen.

        Any JID trouble here just ends the inline wait: the trigger waits out
        outages under the same policy as the blocking wait.
        """
        self._job = job
        try:
            wait_in_worker(client, job, poll=seconds, live=live, log=self.log, seen=self._seen,
                           seconds=seconds)
        except WaitFailedError as exc:
            self.log.info("JID wait failed (%s); deferring", exc)
        return self._job

    def _wait_blocking(self, client: JIDClient, job: dict[str, Any], live: LiveLog) -> dict:
        waiting = client.with_retry(RetryPolicy.outage(self.outage_timeout), log=self.log)
        try:
            return wait_in_worker(waiting, job, poll=poll_seconds(self.poke_interval), live=live,
                                  log=self.log, seen=self._seen)
        except WaitFailedError as exc:
            raise AirflowException(str(exc)) from exc.__cause__

    def _seen(self, job: dict[str, Any]) -> None:
        self._job = job

    def execute_complete(self, context: Any, event: dict[str, Any] | str | None = None) -> Any:
        """Resume after the trigger fired: fetch the log and settle the outcome."""
        conf = self._conf(context)
        if not isinstance(event, dict):
            # The trigger ended the task itself (TaskSuccessEvent) but a runner
            # that does not honour such events (``dag.test()``) resumed it with
            # the bare state: find this try's job again by its stable _id.
            return self._resume_without_job(context, conf, event)
        job = event.get("job") or {}
        self._job = job
        if event.get("status") == "reused":
            return ReusedJob(job, str(event.get("log") or "")).finish(
                self.lute_task_id, self.log, context["ti"])
        if event.get("status") == "rendered":
            self._push_rendering(event.get("rendering") or {}, context)
            return None
        if event.get("status") != "finished":
            raise AirflowException(
                f"waiting for {self.lute_task_id} (job {job.get('tool_id')}) failed: "
                f"{event.get('message', 'no message')}"
            )
        with self._client(conf) as client:
            live = self._live(conf, event.get("log_offset", 0), bool(event.get("log_shown")))
            return self._finish(client, job, context, live)

    def _resume_without_job(self, context: Any, conf: Mapping[str, Any], event: Any) -> Any:
        doc = self.control_document(context)
        with self._client(conf) as client:
            if is_dry_run(conf):
                return self._dry_run(client, doc, context)
            try:
                found = client.job_statuses([doc])
            except JIDError as exc:
                raise AirflowException(
                    f"resumed with {event!r}; cannot find job {doc['_id']}: {exc}"
                ) from exc
            if not found or not has_ended(found[0]):
                raise AirflowException(
                    f"resumed with {event!r} but job {doc['_id']} has not ended: {found}"
                )
            self._job = found[0]
            return self._finish(client, found[0], context, self._live(conf))

    def _finish(self, client: JIDClient, job: dict[str, Any], context: Any, live: LiveLog) -> Any:
        log_text = job_log_text(client, job)
        context["ti"].xcom_push(key="log", value=log_text)
        # only what the live lines (if any) did not show yet
        for line in final_lines(live, client, job, log_text):
            self.log.info("%s", line)
        self.log.info(
            "job %s of %s ended %s (%s, exit code %s)",
            job.get("tool_id"), self.lute_task_id, job.get("status"), job.get("raw_status"),
            job.get("exit_code"),
        )
        failure = failure_message(self.lute_task_id, job, log_text)
        if failure is not None:
            raise AirflowException(failure)
        return job.get("tool_id")

    def _dry_run(self, client: JIDClient, doc: dict[str, Any], context: Any) -> None:
        try:
            rendering = client.render_job(doc)
        except JIDError as exc:
            raise AirflowException(f"JID refused to render {self.lute_task_id}: {exc}") from exc
        self._push_rendering(rendering or {}, context)

    def _push_rendering(self, rendering: dict[str, Any], context: Any) -> None:
        text = rendering_text(self.lute_task_id, rendering)
        self.log.info("%s", text)
        context["ti"].xcom_push(key="log", value=text)

    def on_kill(self) -> None:
        """The running task was killed: cancel its job through the JID."""
        job = self._job
        if not job or has_ended(job) or self._endpoint is None:
            return
        try:
            with self._endpoint.client(token=self._token) as client:
                done = client.kill_job(job)
            self.log.info("cancelled job %s: %s", job.get("tool_id"), done.get("status"))
        except JIDError as exc:
            self.log.error("could not cancel job %s: %s", job.get("tool_id"), exc)
