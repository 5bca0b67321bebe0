"""Everything checked before a run is triggered: credentials, reachability, the task config.

Each check fails with a :class:`LaunchError` carrying the launcher's exit code:
2 for what the user gave (arguments, user config, task config, an unknown
workflow), 3 for a service that cannot be reached or refuses the credentials.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from lute.airflow.client import (
    JIDAuthError,
    JIDClient,
    JIDError,
    JIDUnavailableError,
    RetryPolicy,
)
from lute.launch.airflow_api import AirflowClient, AirflowNotFoundError
from lute.launch.configcheck import ConfigCheckError, check_task_config
from lute.launch.context import ArpContext
from lute.launch.exits import EXIT_BAD_INPUT, EXIT_UNREACHABLE, LaunchError
from lute.launch.follower import MANAGED_OPERATORS
from lute.launch.output import Output, short_task_name
from lute.launch.unknown_workflow import unknown_workflow_message
from lute.launch.userconfig import LaunchConfigError, Profile, read_profile


def resolve_profile(args: argparse.Namespace, env: Mapping[str, str]) -> Profile:
    """The user-config profile for this launch, with ``--airflow-url`` and ``--admin`` applied."""
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


def connect_airflow(profile: Profile) -> AirflowClient:
    """A logged-in client of a healthy Airflow (its errors map to exit 3)."""
    airflow = AirflowClient(
        profile.airflow_url,  # type: ignore[arg-type]
        username=profile.username,
        password=profile.password,
        token=profile.token,
    )
    airflow.check_health()
    airflow.login()
    return airflow


def connect_jid(profile: Profile, ctx: ArpContext, out: Output) -> JIDClient | None:
    """A client of the JID that accepts this launch's token; None when none is configured."""
    if not profile.jid_url:
        out.info("no JID URL configured: task logs will be shown when each task ends")
        return None
    jid = JIDClient(
        profile.jid_url,
        token=ctx.authorization,
        timeout=5.0,
        ca_bundle=profile.jid_ca_bundle,
        retry=RetryPolicy(attempts=3, budget_seconds=6.0, initial_backoff=0.5),
    )
    try:
        jid.healthz()
        # an authenticated read: /healthz alone would accept any token
        # for this launch's experiment: a token of another experiment must
        # stop the launch here, before a run is triggered to fail with 403
        query = {"arp_root_job_id": ctx.arp_job_id, "experiment": ctx.experiment, "limit": 1}
        jid.request("GET", "jobs?" + urlencode(query))
    except JIDAuthError as exc:
        raise LaunchError(
            EXIT_UNREACHABLE,
            f"the JID at {profile.jid_url} refused the token for experiment "
            f"{ctx.experiment}: {exc}",
        ) from None
    except JIDUnavailableError as exc:
        raise LaunchError(EXIT_UNREACHABLE, f"JID at {profile.jid_url}: {exc}") from None
    except JIDError as exc:
        raise LaunchError(EXIT_UNREACHABLE, f"JID at {profile.jid_url}: {exc}") from None
    return jid


def managed_tasks(airflow: AirflowClient, dag_id: str) -> list[str]:
    """The DAG's managed tasks, without their task-group prefixes (unknown DAG: exit 2)."""
    try:
        tasks = airflow.tasks(dag_id)
    except AirflowNotFoundError:
        raise LaunchError(EXIT_BAD_INPUT, unknown_workflow_message(airflow, dag_id)) from None
    return [
        short_task_name(t["task_id"])
        for t in tasks
        if t.get("operator_name") in MANAGED_OPERATORS
    ]


def check_config(
    config: str, managed: Sequence[str], ctx: ArpContext, env: Mapping[str, str], out: Output
) -> None:
    """The task config parses for this experiment and run, and covers every managed task."""
    config_env = dict(env, EXPERIMENT=ctx.experiment, RUN_NUM=ctx.run)
    try:
        check_task_config(config, managed, config_env)
    except ConfigCheckError as exc:
        raise LaunchError(EXIT_BAD_INPUT, str(exc)) from None
    out.info(f"config {config}: OK for managed tasks {', '.join(managed) or '(none)'}")
