"""``lute-dev-stack``: start, stop and inspect the embedded dev stack from a shell.

``lute-dev-stack up [--slurm] [--airflow-port P] [--jid-port P]`` starts a
:class:`~lute.launch.stack.Stack` and waits until it is healthy; ``down`` stops
exactly the processes ``up`` recorded; ``status`` reports them; ``restart
NAME`` restarts one of them (``jid``, ``api-server``, ``scheduler``,
``dag-processor``, ``triggerer``) and waits until it is ready. The state dir is
``.dev/`` under the repository root unless ``--state-dir`` or
``$LUTE_DEV_STATE_DIR`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lute.launch.processes import read_records
from lute.launch.stack import DEFAULT_STATE_DIR, REPO_ROOT, Stack, StackError

__all__ = ["REPO_ROOT", "Stack", "StackError", "build_parser", "main"]


def _state_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("LUTE_DEV_STATE_DIR") or DEFAULT_STATE_DIR)


def _up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args.state_dir)
    backend = "slurm" if args.slurm else "local"
    if args.slurm:
        script = REPO_ROOT / "launch_scripts" / "dev" / "start_slurm.sh"
        if os.geteuid() == 0:
            rc = subprocess.run([str(script)], check=False).returncode
        else:
            # only root can install and start Slurm; an existing cluster will do
            rc = subprocess.run(["sinfo", "-h"], capture_output=True, check=False).returncode
        if rc != 0:
            print(
                f"lute-dev-stack: no Slurm cluster ({script} failed or `sinfo` does not "
                f"answer; run {script} as root)",
                file=sys.stderr,
            )
            return 1
    stack = Stack(
        state_dir,
        args.airflow_port,
        args.jid_port,
        backend,
        parallelism=args.parallelism,
        timeout=args.timeout,
        allowed_config_roots=(
            [str(REPO_ROOT), *map(str, args.allow_config_root)] if args.allow_config_root else None
        ),
        wait_for_dags=args.wait_dag,
    )
    t0 = time.monotonic()
    try:
        stack.start()
    except StackError as exc:
        print(f"lute-dev-stack: {exc}", file=sys.stderr)
        return 1
    print(
        f"dev stack up in {time.monotonic() - t0:.1f} s ({backend} backend)\n"
        f"  Airflow  {stack.airflow_url}  (user {stack.username}; password in "
        f"{stack.launch_config_path})\n"
        f"  JID      {stack.jid_url}\n"
        f"  launcher config: export LUTE_LAUNCH_CONFIG={stack.launch_config_path}\n"
        f"  stop with: lute-dev-stack down"
        + (f" --state-dir {state_dir}" if args.state_dir else "")
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    stack = Stack(_state_dir(args.state_dir))
    recs = read_records(stack.pid_dir)
    stack.stop()
    print(f"stopped {len(recs)} recorded process(es)" if recs else "nothing recorded to stop")
    return 0


def _status(args: argparse.Namespace) -> int:
    stack = Stack(_state_dir(args.state_dir))
    recs = read_records(stack.pid_dir)
    if not recs:
        print(f"no dev stack recorded in {stack.state_dir}")
        return 3
    state_file = stack.state_dir / "stack.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        print(f"Airflow {state['airflow_url']}  JID {state['jid_url']}  ({state['backend']})")
    all_alive = True
    for rec in recs:
        alive = rec.is_alive()
        all_alive &= alive
        print(f"  {rec.name:<14} pid {rec.pid:<8} {'running' if alive else 'DEAD'}  {rec.log_path}")
    return 0 if all_alive else 1


def _restart(args: argparse.Namespace) -> int:
    stack = Stack(_state_dir(args.state_dir))
    t0 = time.monotonic()
    try:
        rec = stack.restart(args.component, timeout=args.timeout)
    except StackError as exc:
        print(f"lute-dev-stack: {exc}", file=sys.stderr)
        return 1
    print(f"{rec.name} restarted (pid {rec.pid}), ready in {time.monotonic() - t0:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``lute-dev-stack`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="lute-dev-stack", description="Run Airflow 3 and the JID locally for development."
    )
    parser.add_argument("--state-dir", help="state directory (default: .dev/ in the repo)")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    up = sub.add_parser("up", parents=[common], help="start the stack and wait until it is healthy")
    up.add_argument("--slurm", action="store_true", help="JID on the real single-node Slurm")
    up.add_argument("--airflow-port", type=int, default=28080)
    up.add_argument("--jid-port", type=int, default=28000)
    up.add_argument("--parallelism", type=int, default=4)
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health")
    up.add_argument(
        "--wait-dag",
        action="append",
        default=[],
        metavar="DAG_ID",
        help="also wait until Airflow has parsed this DAG (repeatable)",
    )
    up.add_argument(
        "--allow-config-root",
        action="append",
        default=[],
        metavar="DIR",
        help="directory the JID accepts task configs under (repeatable; default: the "
        "repository and /tmp)",
    )
    sub.add_parser("down", parents=[common], help="stop the processes `up` started")
    sub.add_parser("status", parents=[common], help="show the recorded processes")
    restart = sub.add_parser(
        "restart", parents=[common], help="restart one component and wait until it is ready"
    )
    restart.add_argument(
        "component", help="jid, api-server, scheduler, dag-processor or triggerer"
    )
    restart.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for it")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lute-dev-stack``."""
    args = build_parser().parse_args(argv)
    handler = {"up": _up, "down": _down, "status": _status, "restart": _restart}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
