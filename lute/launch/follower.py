"""Follow one DAG run: each task's state changes, each job's log, the final table.

The follower polls Airflow for the run and its task instances and the JID for
the run's jobs (found by ``arp_root_job_id``), backing off while nothing
changes. Each job's log is streamed with its task name on every line; a task
that never reached a listable JID job falls back to its XCom log, or to the
errors in Airflow's own task log.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from lute.airflow.client import JIDClient, JIDError
from lute.airflow.control_document import step_uuid
from lute.job_status import ACTIVE_STATUSES
from lute.launch.airflow_api import AirflowClient, AirflowError, AirflowUnreachableError
from lute.launch.context import ArpContext
from lute.launch.logstream import LogStream
from lute.launch.output import Output, bytes_text, percent_text, seconds_text

MANAGED_OPERATORS = ("JIDSlurmOperator",)
TERMINAL_RUN_STATES = ("success", "failed")
COST_WAIT = 5.0
"""Seconds the summary waits for the JID to record what the finished jobs cost."""
SUMMARY_COLUMNS = ("task", "state", "duration", "job id", "job status",
                   "queue wait", "run time", "peak mem", "cpu eff")


def _duration(ti: Mapping[str, Any]) -> str:
    value = ti.get("duration")
    if value is None:
        return "-"
    return f"{float(value):.1f} s"


@dataclass
class JobView:
    """One JID job of the run, with its log stream."""

    doc: dict[str, Any]
    stream: LogStream
    task_id: str | None = None

    @property
    def name(self) -> str:
        """The managed task the job runs."""
        definition = self.doc.get("def") or {}
        return str(definition.get("name") or self.doc.get("tool_id") or self.doc.get("_id"))

    @property
    def task(self) -> str:
        """How the job is labelled: its Airflow task id (with any group), else its name."""
        return self.task_id or self.name


class Follower:
    """Follow one DAG run: state changes, streamed logs, the final summary."""

    def __init__(
        self,
        airflow: AirflowClient,
        jid: JIDClient | None,
        dag_id: str,
        run_id: str,
        ctx: ArpContext,
        output: Output,
        *,
        min_interval: float = 0.5,
        max_interval: float = 2.0,
        airflow_outage_s: float = 120.0,
    ) -> None:
        self.airflow = airflow
        self.jid = jid
        self.dag_id = dag_id
        self.run_id = run_id
        self.ctx = ctx
        self.out = output
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.airflow_outage_s = airflow_outage_s
        self.states: dict[str, str | None] = {}
        self.tis: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, JobView] = {}
        self.run_state: str | None = None
        self._jid_warned = False

    # -- one tick
    def poll_states(self) -> bool:
        """Fetch the run and its task instances; print changes. True if anything changed."""
        changed = False
        run = self.airflow.dag_run(self.dag_id, self.run_id)
        if run.get("state") != self.run_state:
            self.run_state = run.get("state")
            self.out.info(f"run {self.run_id}: {self.run_state}")
            changed = True
        tis = self.airflow.task_instances(self.dag_id, self.run_id)
        for ti in sorted(tis, key=lambda t: (t.get("start_date") or "~", t["task_id"])):
            tid = ti["task_id"]
            self.tis[tid] = ti
            state = ti.get("state")
            if state != self.states.get(tid, "<new>"):
                if tid in self.states or state is not None:
                    prev = self.states.get(tid)
                    arrow = f"{prev} -> {state}" if prev is not None else str(state)
                    self.out.info(f"{tid}: {arrow}")
                    changed = True
                self.states[tid] = state
        return changed

    def poll_logs(self) -> bool:
        """List the run's JID jobs and print new log lines. True if any line was printed."""
        if self.jid is None:
            return False
        try:
            query = urlencode(
                {"arp_root_job_id": self.ctx.arp_job_id, "experiment": self.ctx.experiment}
            )
            docs = self.jid.request("GET", f"jobs?{query}")
        except JIDError as exc:
            if not self._jid_warned:
                self.out.info(f"cannot list the run's jobs from the JID (will retry): {exc}")
                self._jid_warned = True
            return False
        printed = False
        for doc in docs or []:
            key = str(doc.get("_id"))
            view = self.jobs.get(key)
            if view is None:
                view = JobView(doc=doc, stream=LogStream(label=""), task_id=self._task_of(key))
                view.stream.label = view.task
                self.jobs[key] = view
                self.out.info(
                    f"{view.task}: job {doc.get('tool_id') or '-'} {doc.get('status', '')}".rstrip()
                )
                printed = True
            elif doc.get("status") != view.doc.get("status"):
                self.out.info(f"{view.task}: job {doc.get('tool_id')} {doc.get('status')}")
                printed = True
            view.doc = doc
            if not view.stream.complete:
                printed |= self._read_log(view)
        return printed

    def _task_of(self, job_id: str) -> str | None:
        """The task id whose try submitted job ``job_id`` (the operator's stable ids)."""
        for tid, ti in self.tis.items():
            tries = int(ti.get("try_number") or 1)
            map_index = int(ti.get("map_index", -1) if ti.get("map_index") is not None else -1)
            for attempt in range(tries, 0, -1):
                if step_uuid(self.dag_id, self.run_id, tid, attempt, map_index) == job_id:
                    return tid
        return None

    def _read_log(self, view: JobView, rounds: int = 8) -> bool:
        printed = False
        for _ in range(rounds):  # a big log arrives in several chunks
            try:
                chunk = self.jid.job_log(view.doc, offset=view.stream.next_offset)  # type: ignore[union-attr]
            except JIDError:
                return printed
            lines = view.stream.feed(
                chunk.get("text", ""),
                int(chunk.get("offset", view.stream.next_offset)),
                int(chunk.get("next_offset", view.stream.next_offset)),
                bool(chunk.get("complete")),
            )
            for line in lines:
                self.out.log_line(view.task, line, view.name)
            printed |= bool(lines)
            if view.stream.complete or not chunk.get("text"):
                return printed
        return printed

    # -- whole run
    def follow(self, deadline: float | None = None) -> str:
        """Poll (with backoff while nothing changes) until the run ends; its final state."""
        interval = self.min_interval
        lost_since: float | None = None
        while True:
            try:
                changed = self.poll_states()
                lost_since = None
            except AirflowUnreachableError as exc:
                # a restarting api-server must not end the launch at once
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > self.airflow_outage_s:
                    raise
                self.out.info(f"{exc}; retrying")
                changed = False
            changed |= self.poll_logs()
            if self.run_state in TERMINAL_RUN_STATES:
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            interval = self.min_interval if changed else min(interval * 1.5, self.max_interval)
            time.sleep(interval)
        self.drain()
        return self.run_state or "unknown"

    def drain(self, timeout: float = 10.0) -> None:
        """Read what is left of every log once the run has ended."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.poll_logs()
            pending = [
                v
                for v in self.jobs.values()
                if not v.stream.complete and v.doc.get("status") in ACTIVE_STATUSES
            ]
            if not pending:
                break
            time.sleep(0.5)
        for view in self.jobs.values():
            for line in view.stream.flush():
                self.out.log_line(view.task, line, view.name)
        self._await_costs(COST_WAIT)
        self._xcom_logs_without_job()

    def _await_costs(self, timeout: float) -> None:
        # the JID reads a job's cost from the scheduler's accounting a moment
        # after the job ended: give it that moment (bounded) for the summary
        end = time.monotonic() + timeout
        while self.jid is not None and time.monotonic() < end and any(
            "cost" not in v.doc and v.doc.get("status") not in ACTIVE_STATUSES
            for v in self.jobs.values()
        ):
            time.sleep(0.5)
            self.poll_logs()

    def _xcom_logs_without_job(self) -> None:
        # a task that never reached the JID in a way we could list (a dry run,
        # a JID we cannot read) may still have pushed its log to XCom
        streamed = {v.task for v in self.jobs.values()}
        for tid, ti in self.tis.items():
            name = tid
            if tid in streamed or ti.get("state") not in ("success", "failed"):
                continue
            if ti.get("operator") not in MANAGED_OPERATORS:
                continue
            try:
                value = self.airflow.xcom(self.dag_id, self.run_id, tid, "log")
            except AirflowError:
                value = None
            if value:
                for line in str(value).splitlines():
                    self.out.log_line(name, line)
            elif ti.get("state") == "failed":
                self._airflow_errors(tid, ti)

    def _airflow_errors(self, tid: str, ti: Mapping[str, Any]) -> None:
        # the step failed before its job could run (refused by the JID, say):
        # the reason is only in Airflow's own task log
        try:
            events = self.airflow.task_log_events(
                self.dag_id, self.run_id, tid, int(ti.get("try_number") or 1)
            )
        except AirflowError as exc:
            self.out.info(f"{tid}: failed; its Airflow log is unreadable: {exc}")
            return
        for event in events:
            if event.get("level") not in ("error", "critical"):
                continue
            details = event.get("error_detail") or []
            reason = details[0].get("exc_value") if details and isinstance(details[0], dict) else ""
            text = f"{event.get('event')}: {reason}" if reason else str(event.get("event"))
            self.out.log_line(tid, f"[airflow] {text}")

    def cancel(self, grace: float = 10.0) -> None:
        """Mark the run failed, give the operators ``grace`` s to cancel, then kill leftovers."""
        try:
            self.airflow.mark_run_failed(self.dag_id, self.run_id)
            self.out.info(f"marked run {self.run_id} failed")
        except AirflowError as exc:
            self.out.info(f"could not mark the run failed: {exc}")
        end = time.monotonic() + grace
        while time.monotonic() < end:
            self.poll_logs()
            if not self._active_jobs():
                break
            time.sleep(0.5)
        for view in self._active_jobs():
            # the operator did not cancel it in time: do it here, so no job
            # outlives the launcher that was stopped
            try:
                view.doc = self.jid.kill_job(view.doc)  # type: ignore[union-attr]
                self.out.info(f"{view.task}: cancelled job {view.doc.get('tool_id')}")
            except JIDError as exc:
                self.out.info(f"{view.task}: could not cancel job: {exc}")
        with contextlib.suppress(AirflowError):
            self.poll_states()
        self.poll_logs()
        for view in self.jobs.values():
            for line in view.stream.flush():
                self.out.log_line(view.task, line, view.name)

    def _active_jobs(self) -> list[JobView]:
        return [v for v in self.jobs.values() if v.doc.get("status") in ACTIVE_STATUSES]

    def summary_rows(self) -> list[tuple[str, ...]]:
        """One row of :data:`SUMMARY_COLUMNS` per task, in start order (``-``: unknown)."""
        by_task: dict[str, JobView] = {}
        for view in self.jobs.values():
            by_task[view.task] = view  # the latest try wins
        rows = []
        ordered = sorted(
            self.tis.values(), key=lambda t: (t.get("start_date") or "~", t["task_id"])
        )
        for ti in ordered:
            name = ti["task_id"]
            view = by_task.get(name)
            cost = (view.doc.get("cost") if view else None) or {}
            rows.append(
                (
                    name,
                    str(ti.get("state")),
                    _duration(ti),
                    str(view.doc.get("tool_id") or "-") if view else "-",
                    str(view.doc.get("status") or "-") if view else "-",
                    seconds_text(cost.get("queue_wait_seconds")),
                    seconds_text(cost.get("run_seconds")),
                    bytes_text(cost.get("max_rss_bytes")),
                    percent_text(cost.get("cpu_efficiency")),
                )
            )
        return rows

    def staging_lines(self) -> list[str]:
        """One line per file a job's staging moved, and one per staging failure."""
        by_task: dict[str, JobView] = {}
        for view in self.jobs.values():
            by_task[view.task] = view  # the latest try wins
        lines = []
        for task, view in sorted(by_task.items()):
            for item in view.doc.get("staged") or []:
                arrow = "in " if item.get("direction") == "in" else "out"
                lines.append(f"{task}: staged {arrow} {item.get('path')} "
                             f"({item.get('bytes')} bytes, sha256 {item.get('sha256')})")
            if view.doc.get("staging_error"):
                lines.append(f"{task}: {view.doc['staging_error']}")
        return lines

    def print_summary(self) -> None:
        """The final table (:data:`SUMMARY_COLUMNS`), then what staging moved."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{self.dag_id} / {self.run_id}: {self.run_state}")
        for col in SUMMARY_COLUMNS:
            table.add_column(col)
        for row in self.summary_rows():
            table.add_row(*row)
        console = Console(file=self.out.out, width=140, force_terminal=False)
        console.print(table)
        for line in self.staging_lines():
            console.print(line, markup=False, highlight=False)

