"""``lute-launch-airflow`` (``launch_scripts/launch_airflow.py``): trigger and follow a workflow.

Arguments are LUTE's (``-c``, ``-w``, ``-W``, ``-d``, ``--test``, ``-e``, ``-r``,
``-a``) plus ``--dry-run`` and ``--airflow-url``; every unknown argument is a
Slurm argument passed on to each managed task. The launcher

1. works out the ARP context (``EXPERIMENT``, ``RUN_NUM``, ``ARP_JOB_ID``,
   ``ARP_LOCATION``, ``Authorization``, ``JID_UPDATE_COUNTERS``); started by
   hand (no ``Authorization``) it needs ``-e``/``-r`` and a JID token from the
   environment or the user config;
2. checks the task config (it parses, with substitutions, and every managed
   task of the workflow has its Task's section) before anything is triggered;
3. checks Airflow (login, health) and the JID (health, token);
4. triggers ``lute_<workflow>`` (or stores a ``-W`` definition and waits for
   Airflow to parse its DAG), then follows the run: each task's state changes
   once, each job's log streamed from the JID with the task name on each
   line, and a summary table at the end.

Exit codes: 0 the run succeeded, 1 it failed (or the launcher was stopped by
SIGTERM/SIGINT, after marking the run failed), 2 bad arguments or config,
3 Airflow or the JID unreachable or refusing the credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlencode

from lute.airflow.client import (
    JIDAuthError,
    JIDClient,
    JIDError,
    JIDUnavailableError,
    RetryPolicy,
)
from lute.airflow.control_document import step_uuid
from lute.job_status import ACTIVE_STATUSES
from lute.launch.airflow_api import (
    AirflowAuthError,
    AirflowClient,
    AirflowError,
    AirflowNotFoundError,
    AirflowUnreachableError,
)
from lute.launch.configcheck import ConfigCheckError, check_task_config
from lute.launch.logstream import LogStream
from lute.launch.userconfig import LaunchConfigError, Profile, read_profile

LUTE_LOCATION = Path(__file__).resolve().parents[2]
"""The install this launcher belongs to (sent as ``conf["lute_location"]``, as LUTE does)."""

EXIT_SUCCESS = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3

MANAGED_OPERATORS = ("JIDSlurmOperator",)
TERMINAL_RUN_STATES = ("success", "failed")


class LaunchError(Exception):
    """Stop the launch with ``code`` and a one-line message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class LaunchInterruptedError(Exception):
    """SIGTERM or SIGINT arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ------------------------------------------------------------------ arguments
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise LaunchError(EXIT_BAD_INPUT, f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The launcher's arguments (LUTE's, plus ``--dry-run`` and ``--airflow-url``)."""
    parser = _Parser(
        prog="launch_airflow.py",
        description="Trigger an Airflow workflow of managed tasks and follow it to its end. "
        "Unknown arguments are passed to Slurm for every managed task.",
        # a prefix of our options must never swallow a Slurm option
        allow_abbrev=False,
    )
    parser.add_argument("-a", "--admin", action="store_true", help="use the admin credentials")
    parser.add_argument("-c", "--config", required=True, help="path to the task config YAML")
    parser.add_argument("-d", "--debug", action="store_true", help="run the tasks in debug mode")
    parser.add_argument("--test", action="store_true", help="use the test Airflow instance")
    parser.add_argument("-w", "--workflow", default="test", help="workflow: DAG lute_<name>")
    parser.add_argument(
        "-W", "--workflow_defn", default="", help="YAML file with a dynamic workflow definition"
    )
    parser.add_argument("-e", "--experiment", help="experiment (when not started by the ARP)")
    parser.add_argument("-r", "--run", help="run number (when not started by the ARP)")
    parser.add_argument(
        "--dry-run", action="store_true", help="render every job's submission, submit nothing"
    )
    parser.add_argument("--airflow-url", help="Airflow base URL (overrides the user config)")
    parser.add_argument(
        "--parse-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for Airflow to parse a -W workflow (default 120)",
    )
    return parser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Known arguments and the Slurm arguments (everything else, in order)."""
    args, slurm_args = build_parser().parse_known_args(list(argv))
    return args, slurm_args


# ---------------------------------------------------------------- ARP context
@dataclass(frozen=True)
class ArpContext:
    """What the ARP environment (or the command line) says about this launch."""

    experiment: str
    run: str
    arp_job_id: str
    arp_location: str
    authorization: str = field(repr=False)
    jid_update_counters: str | None = None
    from_arp: bool = False


def arp_context(
    args: argparse.Namespace, env: Mapping[str, str], jid_token: str | None
) -> ArpContext:
    """The ARP context from the environment, or from ``-e``/``-r`` and a JID token."""
    auth = env.get("Authorization")
    if auth:
        experiment = args.experiment or env.get("EXPERIMENT")
        run = args.run or env.get("RUN_NUM")
        if not experiment or not run:
            raise LaunchError(
                EXIT_BAD_INPUT, "Authorization is set but EXPERIMENT/RUN_NUM are not: use -e/-r"
            )
        return ArpContext(
            experiment=experiment,
            run=str(run),
            arp_job_id=env.get("ARP_JOB_ID") or str(uuid.uuid4()),
            arp_location=env.get("ARP_LOCATION", "local"),
            authorization=auth,
            jid_update_counters=env.get("JID_UPDATE_COUNTERS"),
            from_arp=True,
        )
    if not args.experiment or not args.run:
        raise LaunchError(
            EXIT_BAD_INPUT,
            "not started by the ARP (no Authorization in the environment): "
            "give -e EXPERIMENT and -r RUN",
        )
    if not jid_token:
        raise LaunchError(
            EXIT_BAD_INPUT,
            "no JID token: set LUTE_JID_TOKEN or jid_token in the launcher's user config",
        )
    token = jid_token.strip()
    return ArpContext(
        experiment=args.experiment,
        run=str(args.run),
        arp_job_id=str(uuid.uuid4()),
        arp_location=env.get("ARP_LOCATION", "local"),
        authorization=token if token.lower().startswith("bearer ") else f"Bearer {token}",
        jid_update_counters=env.get("JID_UPDATE_COUNTERS"),
    )


def build_conf(
    args: argparse.Namespace,
    ctx: ArpContext,
    slurm_args: Sequence[str],
    workflow: dict[str, Any] | None,
    *,
    user: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """The DAG run's ``conf`` (DESIGN.md's keys, LUTE-compatible)."""
    return {
        "experiment": ctx.experiment,
        # ISO 8601 basic format (no colons): the run id travels into job names,
        # log file names and the JID's run_num, where ':' is not allowed
        "run_id": f"{ctx.run}_{now.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%S.%fZ')}",
        "JID_UPDATE_COUNTERS": ctx.jid_update_counters,
        "ARP_ROOT_JOB_ID": ctx.arp_job_id,
        "ARP_LOCATION": ctx.arp_location,
        "Authorization": ctx.authorization,
        "user": user,
        # LUTE's operator builds def.executable as <lute_location>/launch_scripts/...
        "lute_location": str(LUTE_LOCATION),
        "lute_params": {
            "config_file": str(Path(args.config).absolute()),
            "debug": bool(args.debug),
        },
        "slurm_params": list(slurm_args),
        "dryrun": bool(args.dry_run),
        "workflow": workflow or {},
    }


# ------------------------------------------------------------------- output
def _now() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


class Output:
    """Where the launcher writes: one line at a time, flushed (Slurm logs it)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def info(self, message: str) -> None:
        """A launcher message."""
        print(f"{_now()} launch: {message}", file=self.out, flush=True)

    def log_line(self, label: str, line: str, own_prefix: str | None = None) -> None:
        """One line of a task's log, prefixed with the task name."""
        # the Executor already prefixes its own lines with the managed task name
        prefix = f"{own_prefix or label}: "
        if line.startswith(prefix):
            line = line[len(prefix) :]
        print(f"[{label}] {line}", file=self.out, flush=True)


def short_task_name(task_id: str) -> str:
    """A task id without its task-group prefixes."""
    return task_id.rsplit(".", 1)[-1]


def _duration(ti: Mapping[str, Any]) -> str:
    value = ti.get("duration")
    if value is None:
        return "-"
    return f"{float(value):.1f} s"


# ------------------------------------------------------------------ follower
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
        self._xcom_logs_without_job()

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

    def summary_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(task, state, duration, job id, job status) per task, in start order."""
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
            rows.append(
                (
                    name,
                    str(ti.get("state")),
                    _duration(ti),
                    str(view.doc.get("tool_id") or "-") if view else "-",
                    str(view.doc.get("status") or "-") if view else "-",
                )
            )
        return rows

    def print_summary(self) -> None:
        """The final table: task, state, duration, Slurm/JID job id, job status."""
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{self.dag_id} / {self.run_id}: {self.run_state}")
        for col in ("task", "state", "duration", "job id", "job status"):
            table.add_column(col)
        for row in self.summary_rows():
            table.add_row(*row)
        Console(file=self.out.out, width=120, force_terminal=False).print(table)


# ------------------------------------------------------------------- launch
def _profile(args: argparse.Namespace, env: Mapping[str, str]) -> Profile:
    try:
        profile = read_profile("test" if args.test else "default", env=env)
    except LaunchConfigError as exc:
        raise LaunchError(EXIT_BAD_INPUT, str(exc)) from None
    if args.airflow_url:
        profile = profile.model_copy(update={"airflow_url": args.airflow_url})
    if args.admin:
        if not (profile.admin_token or (profile.admin_username and profile.admin_password)):
            raise LaunchError(EXIT_BAD_INPUT, "--admin: no admin credentials in the user config")
        profile = profile.model_copy(
            update={
                "username": profile.admin_username,
                "password": profile.admin_password,
                "token": profile.admin_token,
            }
        )
    if not profile.airflow_url:
        raise LaunchError(
            EXIT_BAD_INPUT,
            "no Airflow URL: use --airflow-url, LUTE_AIRFLOW_URL or airflow_url in the "
            "launcher's user config",
        )
    return profile


def _managed_tasks(airflow: AirflowClient, dag_id: str) -> list[str]:
    return [
        short_task_name(t["task_id"])
        for t in airflow.tasks(dag_id)
        if t.get("operator_name") in MANAGED_OPERATORS
    ]


def _wait_for_dag(airflow: AirflowClient, dag_id: str, timeout: float, out: Output) -> dict:
    end = time.monotonic() + timeout
    delay = 0.5
    announced = False
    while True:
        try:
            return airflow.get_dag(dag_id)
        except AirflowNotFoundError:
            if time.monotonic() > end:
                raise LaunchError(
                    EXIT_UNREACHABLE, f"Airflow did not parse {dag_id} within {timeout:.0f} s"
                ) from None
            if not announced:
                out.info(f"waiting for Airflow to parse {dag_id}")
                announced = True
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)


def _install_signal_handlers() -> dict[int, Any]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise LaunchInterruptedError(signum)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def launch(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    output: Output | None = None,
    on_triggered: Callable[[str, str], None] | None = None,
) -> int:
    """Run the launcher; the exit code. Raises LaunchError for codes 2 and 3."""
    env = dict(os.environ if env is None else env)
    out = output or Output()
    args, slurm_args = parse_args(argv)
    profile = _profile(args, env)
    ctx = arp_context(args, env, profile.jid_token)

    defn = None
    if args.workflow_defn:
        from lute.airflow.workflow_defn import WorkflowDefinitionError, load_definition

        try:
            defn = load_definition(args.workflow_defn)
        except WorkflowDefinitionError as exc:
            raise LaunchError(EXIT_BAD_INPUT, str(exc)) from None
        dag_id = defn.dag_id
    else:
        dag_id = f"lute_{args.workflow}"

    # reachability first: a config check needs the DAG's managed tasks
    airflow = AirflowClient(
        profile.airflow_url,  # type: ignore[arg-type]
        username=profile.username,
        password=profile.password,
        token=profile.token,
    )
    airflow.check_health()
    airflow.login()
    jid = None
    if profile.jid_url:
        jid = JIDClient(
            profile.jid_url,
            token=ctx.authorization,
            timeout=5.0,
            retry=RetryPolicy(attempts=3, budget_seconds=6.0, initial_backoff=0.5),
        )
        try:
            jid.healthz()
            jid.request("GET", "jobs?" + urlencode({"arp_root_job_id": ctx.arp_job_id}))
        except JIDAuthError as exc:
            raise LaunchError(EXIT_UNREACHABLE, f"the JID refused the token: {exc}") from None
        except JIDUnavailableError as exc:
            raise LaunchError(EXIT_UNREACHABLE, str(exc)) from None
        except JIDError as exc:
            raise LaunchError(EXIT_UNREACHABLE, f"JID at {profile.jid_url}: {exc}") from None
    else:
        out.info("no JID URL configured: task logs will be shown when each task ends")

    if defn is not None:
        managed = defn.task_names()
    else:
        try:
            managed = _managed_tasks(airflow, dag_id)
        except AirflowNotFoundError:
            raise LaunchError(EXIT_BAD_INPUT, f"Airflow has no workflow {dag_id}") from None
    config_env = dict(env, EXPERIMENT=ctx.experiment, RUN_NUM=ctx.run)
    try:
        check_task_config(args.config, managed, config_env)
    except ConfigCheckError as exc:
        raise LaunchError(EXIT_BAD_INPUT, str(exc)) from None
    out.info(f"config {args.config}: OK for managed tasks {', '.join(managed) or '(none)'}")

    if defn is not None:
        from lute.airflow.workflow_defn import store_definition

        path = store_definition(defn)
        out.info(f"stored workflow definition {path.name} -> DAG {dag_id}")
        dag = _wait_for_dag(airflow, dag_id, args.parse_timeout, out)
    else:
        dag = airflow.get_dag(dag_id)
    if dag.get("is_paused"):
        airflow.unpause(dag_id)
        out.info(f"unpaused {dag_id}")

    run_id = f"lute_{uuid.uuid4()}"
    conf = build_conf(
        args,
        ctx,
        slurm_args,
        defn.to_data() if defn is not None else None,
        user=getpass.getuser(),
        now=dt.datetime.now(dt.UTC),
    )
    follower = Follower(airflow, jid, dag_id, run_id, ctx, out)
    previous = _install_signal_handlers()
    triggered = False
    try:
        try:
            run = airflow.trigger(dag_id, run_id, conf)
            triggered = True
            out.info(
                f"triggered {dag_id} run {run_id} (experiment {ctx.experiment}, run {ctx.run}, "
                f"ARP root job {ctx.arp_job_id}{', dry run' if args.dry_run else ''}): "
                f"{run.get('state')}"
            )
            if on_triggered is not None:
                on_triggered(dag_id, run_id)
            state = follower.follow()
        except LaunchInterruptedError as exc:
            # further signals are ignored while we clean up: a second SIGTERM
            # must not leave the run half-cancelled
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            out.info(f"{signal.Signals(exc.signum).name}: stopping")
            if not triggered:
                return EXIT_RUN_FAILED
            if follower.run_state in TERMINAL_RUN_STATES:
                # the run had already ended: never turn a success into a failure
                follower.print_summary()
                return EXIT_SUCCESS if follower.run_state == "success" else EXIT_RUN_FAILED
            try:
                follower.cancel()
            except (AirflowError, JIDError) as err:
                out.info(f"cancelling the run failed: {err}")
            follower.print_summary()
            return EXIT_RUN_FAILED
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    follower.print_summary()
    out.info(f"run {run_id} ended: {state}")
    return EXIT_SUCCESS if state == "success" else EXIT_RUN_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lute-launch-airflow`` and ``launch_scripts/launch_airflow.py``."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return launch(argv)
    except LaunchError as exc:
        print(f"launch_airflow: error: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except AirflowNotFoundError as exc:
        print(f"launch_airflow: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except (AirflowUnreachableError, AirflowAuthError) as exc:
        print(f"launch_airflow: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_UNREACHABLE
    except (AirflowError, JIDUnavailableError, JIDAuthError) as exc:
        print(f"launch_airflow: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_UNREACHABLE
    except LaunchInterruptedError:
        print("launch_airflow: interrupted before anything was triggered", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
