"""The JID token a DAG run's ``conf`` carries: none, or one good for that run only.

Airflow shows a run's conf to everyone who can see the run, and LUTE-style
launches put ``Authorization`` there for the operator. When Airflow's own
``jid`` connection carries a token the operator needs none from the conf, so
the conf gets none; otherwise the launcher trades the caller's token for a
run-scoped one (``POST /{experiment}/run_token``): the same user, this
experiment, this ``arp_root_job_id``, expiring with the run.
"""

from __future__ import annotations

from lute.airflow.client import JIDAuthError, JIDClient, JIDError, bearer
from lute.launch.airflow_api import AirflowClient, AirflowError
from lute.launch.context import ArpContext
from lute.launch.exits import EXIT_UNREACHABLE, LaunchError
from lute.launch.output import Output

RUN_TOKEN_TTL = 3 * 24 * 3600.0
"""How long a run's token lives: longer than any workflow is expected to run."""


def jid_connection_ids(ctx: ArpContext) -> list[str]:
    """The Airflow connections the operator may use for this run, the preferred first."""
    site = f"jid_{ctx.arp_location.lower()}" if ctx.arp_location else None
    return [c for c in (site, "jid_default") if c]


def conf_authorization(
    airflow: AirflowClient, jid: JIDClient | None, ctx: ArpContext, out: Output,
    ttl: float = RUN_TOKEN_TTL,
) -> str | None:
    """The ``Authorization`` value to put in the run's conf; None to put none."""
    for conn_id in jid_connection_ids(ctx):
        try:
            has_token = airflow.connection_has_password(conn_id)
        except AirflowError:
            has_token = None
        if has_token:
            out.info(f"Airflow's {conn_id} connection holds the JID token: none in the run's conf")
            return None
    if jid is None:
        out.info("warning: no JID URL configured, so the run's conf carries the caller's own "
                 "JID token (visible to whoever can see the run in Airflow)")
        return ctx.authorization
    try:
        value = jid.run_token(ctx.experiment, ctx.arp_job_id, ttl)
    except JIDAuthError as exc:
        raise LaunchError(EXIT_UNREACHABLE,
                          f"the JID refused a run token for this launch: {exc}") from None
    except JIDError as exc:
        raise LaunchError(EXIT_UNREACHABLE, f"cannot get a run token from the JID: {exc}") from None
    return bearer(value["token"])
