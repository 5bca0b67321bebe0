"""``lute-launch-airflow`` (``launch_scripts/launch_airflow.py``): trigger and follow a workflow.

Arguments are LUTE's (``-c``, ``-w``, ``-W``, ``-d``, ``--test``, ``-e``, ``-r``,
``-a``) plus ``--dry-run`` and ``--airflow-url``; every unknown argument is a
Slurm argument passed on to each managed task. A launch goes through five steps:

1. resolve its inputs: the arguments, the user-config profile, the ARP context
   (``EXPERIMENT``, ``RUN_NUM``, ``ARP_JOB_ID``, ``ARP_LOCATION``,
   ``Authorization``, ``JID_UPDATE_COUNTERS``; started by hand, without
   ``Authorization``, it needs ``-e``/``-r`` and a JID token) and the workflow;
2. pre-flight: Airflow (health, login) and the JID (health, token) answer, and
   the task config parses and has a section for every managed task;
3. ready the DAG: store a ``-W`` definition (a file, or an Airflow Variable with
   ``defs_store: airflow``: :mod:`lute.launch.defs_store`) and wait for Airflow to parse it,
   unpause the DAG;
4. trigger ``lute_<workflow>`` and follow the run: each task's state changes
   once, each job's log streamed from the JID with the task name on each line;
5. summarise: a table of the tasks, and the exit code.

With ``KRB5CCNAME`` set, the run carries a private copy of that Kerberos
cache in ``conf["kerb_file"]`` (:mod:`lute.launch.kerberos`), removed when
the run ends, as LUTE's launcher does.

Exit codes (:mod:`lute.launch.exits`): 0 the run succeeded, 1 it failed (or the
launcher was stopped by SIGTERM/SIGINT, after marking the run failed), 2 bad
arguments or config, 3 Airflow or the JID unreachable or refusing the credentials.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import signal
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from lute.airflow.client import JIDAuthError, JIDClient, JIDError, JIDUnavailableError
from lute.airflow.workflow_defn import (
    WorkflowDefinition,
    WorkflowDefinitionError,
    load_definition,
)
from lute.launch.airflow_api import (
    AirflowAuthError,
    AirflowClient,
    AirflowError,
    AirflowNotFoundError,
    AirflowUnreachableError,
)
from lute.launch.arguments import parse_args
from lute.launch.conf_token import conf_authorization
from lute.launch.context import ArpContext, arp_context, build_conf
from lute.launch.defs_store import hand_over
from lute.launch.exits import (
    EXIT_BAD_INPUT,
    EXIT_RUN_FAILED,
    EXIT_SUCCESS,
    EXIT_UNREACHABLE,
    LaunchError,
    LaunchInterruptedError,
)
from lute.launch.follower import TERMINAL_RUN_STATES, Follower
from lute.launch.kerberos import CacheCopy, copy_cache
from lute.launch.output import Output
from lute.launch.preflight import (
    check_config,
    connect_airflow,
    connect_jid,
    managed_tasks,
    resolve_profile,
)
from lute.launch.userconfig import Profile


@dataclass(frozen=True)
class LaunchInputs:
    """What one launch is for, worked out before anything is contacted."""

    args: argparse.Namespace
    slurm_args: list[str]
    profile: Profile
    ctx: ArpContext
    dag_id: str
    definition: WorkflowDefinition | None
    """The ``-W`` workflow, or None for a DAG of the DAG folder."""


def resolve_inputs(argv: Sequence[str], env: Mapping[str, str]) -> LaunchInputs:
    """Arguments, profile, ARP context and workflow (bad ones: exit 2)."""
    args, slurm_args = parse_args(argv)
    profile = resolve_profile(args, env)
    ctx = arp_context(args, env, profile.jid_token)
    definition = None
    if args.workflow_defn:
        try:
            definition = load_definition(args.workflow_defn)
        except WorkflowDefinitionError as exc:
            raise LaunchError(EXIT_BAD_INPUT, str(exc)) from None
        dag_id = definition.dag_id
    else:
        dag_id = f"lute_{args.workflow}"
    return LaunchInputs(args, slurm_args, profile, ctx, dag_id, definition)


def _ready_dag(airflow: AirflowClient, inputs: LaunchInputs, out: Output) -> None:
    """Store a ``-W`` definition and wait for its DAG; unpause the DAG."""
    dag_id = inputs.dag_id
    if inputs.definition is not None:
        where = hand_over(inputs.definition, inputs.profile.defs_store, airflow)
        out.info(f"stored workflow definition {where} -> DAG {dag_id}")
        timeout = inputs.args.parse_timeout
        try:
            dag = airflow.wait_for_dag(
                dag_id, timeout, on_wait=lambda: out.info(f"waiting for Airflow to parse {dag_id}")
            )
        except AirflowNotFoundError:
            raise LaunchError(
                EXIT_UNREACHABLE, f"Airflow did not parse {dag_id} within {timeout:.0f} s"
            ) from None
    else:
        dag = airflow.get_dag(dag_id)
    if dag.get("is_paused"):
        airflow.unpause(dag_id)
        out.info(f"unpaused {dag_id}")


def _install_signal_handlers() -> dict[int, Any]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise LaunchInterruptedError(signum)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _trigger_and_follow(
    airflow: AirflowClient,
    follower: Follower,
    inputs: LaunchInputs,
    conf: dict[str, Any],
    out: Output,
    on_triggered: Callable[[str, str], None] | None,
) -> int | None:
    """Trigger the run and follow it to its end; an exit code if a signal stopped it."""
    dag_id, run_id, ctx = inputs.dag_id, follower.run_id, inputs.ctx
    previous = _install_signal_handlers()
    triggered = False
    try:
        try:
            run = airflow.trigger(dag_id, run_id, conf)
            triggered = True
            out.info(
                f"triggered {dag_id} run {run_id} (experiment {ctx.experiment}, run {ctx.run}, "
                f"ARP root job {ctx.arp_job_id}{', dry run' if inputs.args.dry_run else ''}): "
                f"{run.get('state')}"
            )
            if on_triggered is not None:
                on_triggered(dag_id, run_id)
            follower.follow()
        except LaunchInterruptedError as exc:
            # further signals are ignored while we clean up: a second SIGTERM
            # must not leave the run half-cancelled
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            out.info(f"{signal.Signals(exc.signum).name}: stopping")
            return _stop(follower, triggered, out)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return None


def _stop(follower: Follower, triggered: bool, out: Output) -> int:
    """After SIGTERM/SIGINT: cancel a run still going; the exit code."""
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


def _summarise(follower: Follower, out: Output) -> int:
    """The final table and the run's exit code."""
    state = follower.run_state or "unknown"
    follower.print_summary()
    out.info(f"run {follower.run_id} ended: {state}")
    return EXIT_SUCCESS if state == "success" else EXIT_RUN_FAILED


def launch(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    output: Output | None = None,
    on_triggered: Callable[[str, str], None] | None = None,
) -> int:
    """Run the launcher; the exit code. Raises LaunchError for codes 2 and 3."""
    env = dict(os.environ if env is None else env)
    out = output or Output()
    inputs = resolve_inputs(argv, env)

    # reachability first: a config check needs the DAG's managed tasks
    airflow = connect_airflow(inputs.profile)
    jid = connect_jid(inputs.profile, inputs.ctx, out)
    if inputs.definition is not None:
        managed = inputs.definition.task_names()
    else:
        managed = managed_tasks(airflow, inputs.dag_id)
    check_config(inputs.args.config, managed, inputs.ctx, env, out)

    _ready_dag(airflow, inputs, out)
    cache = copy_cache(env)
    try:
        return _run(airflow, jid, inputs, cache, out, on_triggered)
    finally:
        if cache is not None:
            cache.remove()


def _run(
    airflow: AirflowClient,
    jid: JIDClient | None,
    inputs: LaunchInputs,
    cache: CacheCopy | None,
    out: Output,
    on_triggered: Callable[[str, str], None] | None,
) -> int:
    """Trigger the run with its conf, follow it, summarise it: the exit code."""
    if cache is not None:
        out.info(f"Kerberos cache copied for this run to {cache.path}")
    conf = build_conf(
        inputs.args,
        inputs.ctx,
        inputs.slurm_args,
        inputs.definition.to_data() if inputs.definition is not None else None,
        user=getpass.getuser(),
        now=dt.datetime.now(dt.UTC),
        authorization=conf_authorization(airflow, jid, inputs.ctx, out),
        kerb_file=cache.kerb_file if cache is not None else None,
    )
    run_id = f"lute_{uuid.uuid4()}"
    follower = Follower(airflow, jid, inputs.dag_id, run_id, inputs.ctx, out)
    stopped = _trigger_and_follow(airflow, follower, inputs, conf, out, on_triggered)
    if stopped is not None:
        return stopped
    return _summarise(follower, out)


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
