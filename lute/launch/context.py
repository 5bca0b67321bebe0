"""Who and what a launch is for: the ARP context and the DAG run's ``conf``."""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lute.airflow.client import bearer
from lute.launch.exits import EXIT_BAD_INPUT, LaunchError

LUTE_LOCATION = Path(__file__).resolve().parents[2]
"""The install this launcher belongs to (sent as ``conf["lute_location"]``, as LUTE does)."""


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
    return ArpContext(
        experiment=args.experiment,
        run=str(args.run),
        arp_job_id=str(uuid.uuid4()),
        arp_location=env.get("ARP_LOCATION", "local"),
        authorization=bearer(jid_token) or "",
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
    authorization: str | None = None,
    kerb_file: str | None = None,
) -> dict[str, Any]:
    """The DAG run's ``conf`` (LUTE-compatible keys).

    ``Authorization`` is ``authorization`` (see :mod:`lute.launch.conf_token`),
    left out when None. ``kerb_file`` is the launch's copy of the Kerberos
    cache (:mod:`lute.launch.kerberos`), None without one, as LUTE sends it.
    """
    conf = {
        "experiment": ctx.experiment,
        # ISO 8601 basic format (no colons): the run id travels into job names,
        # log file names and the JID's run_num, where ':' is not allowed
        "run_id": f"{ctx.run}_{now.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%S.%fZ')}",
        "JID_UPDATE_COUNTERS": ctx.jid_update_counters,
        "ARP_ROOT_JOB_ID": ctx.arp_job_id,
        "ARP_LOCATION": ctx.arp_location,
        "Authorization": authorization,
        "user": user,
        # LUTE's operator builds def.executable as <lute_location>/launch_scripts/...
        "lute_location": str(LUTE_LOCATION),
        "kerb_file": kerb_file,
        "lute_params": {
            "config_file": str(Path(args.config).absolute()),
            "debug": bool(args.debug),
        },
        "slurm_params": list(slurm_args),
        "dryrun": bool(args.dry_run),
        "workflow": workflow or {},
    }
    if authorization is None:
        del conf["Authorization"]
    if getattr(args, "skip_done", False):
        conf["jid_skip_done"] = True  # read by the operator (lute.airflow.step_conf)
    return conf
