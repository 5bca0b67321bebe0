"""``jid-service``: run the daemon, mint tokens, list stored jobs.

    jid-service serve [--host 127.0.0.1] [--port 28000] [--settings FILE] [--shutdown-timeout S]
    jid-service token --user U --experiment E [--experiment E2] [--admin] --ttl SECONDS
    jid-service jobs [--experiment E] [--status S] [--root-id ID] [--limit N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jid_service.auth import issue_token
from jid_service.job_environment import make_own_files_private
from jid_service.settings import JIDSettings, load_settings
from jid_service.signing_secrets import SecretError, signing_secrets
from lute.job_status import JobStatus

DEFAULT_PORT = 28000


def _settings(path: str | None) -> JIDSettings:
    try:
        return load_settings(Path(path) if path else None)
    except (ValidationError, ValueError) as err:
        raise SystemExit(f"jid-service: bad settings: {err}") from None


def _require_secret(settings: JIDSettings) -> str:
    """The secret new tokens are signed with; exit with the reason when there is none."""
    try:
        return signing_secrets(settings)[0]
    except SecretError as err:
        raise SystemExit(f"jid-service: {err}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the daemon under uvicorn (one worker: the poller lives in the process)."""
    settings = _settings(args.settings)
    _require_secret(settings)
    # held (open) until the process exits, when the server releases it; taken
    # before the heavy imports so that a refused replica says so at once
    local_lock = _one_local_replica(settings)
    import uvicorn

    from jid_service.access_log import uvicorn_log_config
    from jid_service.app import create_app

    make_own_files_private()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from jid_service.backends import create_backend
    from jid_service.backends.base import BackendError

    try:
        backend = create_backend(settings)
    except (BackendError, ValueError, OSError) as err:
        message = f"jid-service: cannot set up the {settings.backend} backend: {err}"
        raise SystemExit(message) from None
    from jid_service.shutdown import GracefulServer

    app = create_app(settings, backend=backend)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            access_log=args.access_log, log_config=uvicorn_log_config(),
                            root_path=args.root_path,
                            timeout_graceful_shutdown=args.shutdown_timeout)
    GracefulServer(config, app.state.stop).run()
    if local_lock is not None:
        local_lock.close()
    return 0


def _one_local_replica(settings: JIDSettings) -> Any:
    """With the local backend on PostgreSQL, the lock that keeps a second replica out."""
    if settings.backend != "local":
        return None
    from jid_service.leadership import ReplicaRefusedError, hold_local_backend_lock

    try:
        return hold_local_backend_lock(settings.effective_db_url)
    except ReplicaRefusedError as err:
        raise SystemExit(f"jid-service: {err}") from None


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token (and nothing else) for the given user and experiments."""
    settings = _settings(args.settings)
    secret = _require_secret(settings)
    if args.ttl <= 0:
        raise SystemExit("jid-service token: --ttl must be positive")
    print(issue_token(secret, args.user, args.experiment, args.ttl, admin=args.admin))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    """Print stored jobs as a table."""
    from rich.console import Console
    from rich.table import Table

    from jid_service.store import JobStore

    settings = _settings(args.settings)
    store = JobStore(settings.effective_db_url)
    try:
        records = store.query(None, args.experiment, args.root_id, args.status, args.limit,
                              newest=True)
    finally:
        store.close()
    table = Table(title=f"{len(records)} job(s)")
    for column in ("_id", "experiment", "run", "task", "status", "raw", "exit", "tool_id",
                   "root id", "submitted (UTC)"):
        table.add_column(column, overflow="fold")
    for rec in records:
        doc = rec.document
        task = doc.get("def", {}).get("name", "")
        when = dt.datetime.fromtimestamp(rec.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(rec.id, rec.experiment, str(doc.get("run_num", "")), task, rec.status,
                      rec.raw_status or "", "" if rec.exit_code is None else str(rec.exit_code),
                      rec.tool_id or "", rec.arp_root_job_id or "", when)
    Console(width=args.width).print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(prog="jid-service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def settings_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--settings", help="YAML settings file (default: $JID_SETTINGS_FILE "
                                          "or config/jid.yaml)")

    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--root-path", default="",
                       help="URL prefix a reverse proxy serves the JID under (e.g. /arps3dfjid)")
    serve.add_argument("--shutdown-timeout", type=float, default=30.0,
                       help="on SIGTERM, seconds to let requests in flight finish (open "
                            "waits are answered at once; default 30)")
    serve.add_argument("--access-log", action="store_true",
                       help="log every request line (paths only: never the query "
                            "string, never headers)")
    settings_arg(serve)
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="print a bearer token")
    token.add_argument("--user", required=True)
    token.add_argument("--experiment", action="append", required=True,
                       help="an experiment the token may use ('*' for all); repeatable")
    token.add_argument("--admin", action="store_true", help="may act as any run_as_user")
    token.add_argument("--ttl", type=float, required=True, help="validity in seconds")
    settings_arg(token)
    token.set_defaults(func=cmd_token)

    jobs = sub.add_parser("jobs", help="list stored jobs")
    jobs.add_argument("--experiment")
    jobs.add_argument("--status", choices=[s.value for s in JobStatus])
    jobs.add_argument("--root-id", help="arp_root_job_id of a workflow run")
    jobs.add_argument("--limit", type=int, default=200, help="show the newest N (default 200)")
    jobs.add_argument("--width", type=int, default=None, help="table width (default: terminal)")
    settings_arg(jobs)
    jobs.set_defaults(func=cmd_jobs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jid-service`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
