"""``job_statuses`` throughput of two JID replicas behind nginx, against one replica direct.

    .venv/bin/python benchmarks/ha_throughput.py [--seconds 12] [--clients 16] [--rounds 3]

Needs the real PostgreSQL (``LUTE_TEST_PG_URL``, from
``launch_scripts/dev/start_postgres.sh``) and Debian's nginx. In one run, on a
fresh schema holding 1,000 finished jobs (so no backend is asked anything: the
slurm backend's poller has no active job to follow):

- ``direct``: ``POST /jid/ws/job_statuses`` with 50 documents per request
  straight to replica A over HTTP (the baseline);
- ``nginx -> 1``: the same through the shipped nginx site (TLS, keep-alive
  upstream) with replica A as its only upstream server;
- ``nginx -> 2``: the same with replicas A and B as upstream servers.

The loads alternate in rounds so that other work on a shared machine weighs on
each alike. Printed: requests/s, p50, p99 of each, and the ratios
``nginx -> 2`` / ``direct`` and ``nginx -> 2`` / ``nginx -> 1`` (what the second
replica adds). Stops by itself after ``rounds x 3 x seconds / rounds`` of load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml
from jid_throughput import BATCH, EXPERIMENT, LAUNCHER, document, load, stop, summarize, wait_http

from lute.launch.ports import free_port_block

REPO_ROOT = Path(__file__).resolve().parent.parent
SITE = REPO_ROOT / "deploy" / "nginx" / "lute-jid.conf"
PREFIX = "/arps3dfjid"
STORED_JOBS = 1_000


def fresh_schema(url: str) -> tuple[str, str]:
    """A new schema on the server at ``url``: (its name, the store URL using it)."""
    import sqlalchemy as sa

    schema = f"jid_bench_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return schema, f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def drop_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def populate(db_url: str, config: Path) -> list[dict[str, Any]]:
    """Store ``STORED_JOBS`` finished jobs; their documents as a client holds them."""
    from sqlalchemy import insert

    from jid_service.store import JobRow, JobStore

    store = JobStore(db_url)
    now = time.time()
    docs, rows = [], []
    for i in range(STORED_JOBS):
        key = f"done-{i:05d}"
        doc = document(key, config)
        rows.append({"id": key, "experiment": EXPERIMENT, "arp_root_job_id": "bench-root",
                     "status": "DONE", "raw_status": "COMPLETED", "exit_code": 0,
                     "tool_id": str(10_000_000 + i), "log_path": None, "user": "bench",
                     "document": json.dumps(doc, separators=(",", ":")),
                     "created_at": now, "updated_at": now})
        docs.append({**doc, "status": "DONE", "tool_id": str(10_000_000 + i)})
    with store.engine.begin() as conn:
        conn.execute(insert(JobRow), rows)
    store.close()
    return docs


def start_replica(work: Path, name: str, settings: dict[str, Any],
                  port: int) -> subprocess.Popen[bytes]:
    """``jid-service serve`` as replica ``name`` (settings in its own directory)."""
    home = work / name
    home.mkdir()
    (home / "jid.yaml").write_text(yaml.safe_dump(
        {**settings, "replica_name": name, "state_dir": str(home / "state")}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JID_")}
    env["JID_SETTINGS_FILE"] = str(home / "jid.yaml")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    argv = [sys.executable, "-m", "jid_service.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--root-path", PREFIX]
    with (home / "jid.log").open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a loopback server certificate: (ca, cert, key)."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.integration.deploy.tls_material import make_tls_files

    tls = make_tls_files(directory)
    return tls.ca, tls.cert, tls.key


def start_nginx(work: Path, upstreams: list[int], https_port: int,
                cert: Path, key: Path) -> subprocess.Popen[bytes]:
    """The shipped site, its upstream block listing ``upstreams``, on loopback."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed (Debian package nginx-light)")
    servers = "\n    ".join(f"server 127.0.0.1:{port};" for port in upstreams)
    text = SITE.read_text()
    for old, new in {
        "access_log /var/log/nginx/lute-jid.access.log;": "access_log off;",
        "server 127.0.0.1:28000;": servers,
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "listen 80;": f"listen 127.0.0.1:{https_port + 1};",
        "listen [::]:80;": "",
        "/etc/ssl/certs/jid.example.org.pem": str(cert),
        "/etc/ssl/private/jid.example.org.key": str(key),
        "/var/log/nginx/": f"{work}/logs/",
    }.items():
        if old not in text:
            raise SystemExit(f"the shipped site no longer has {old!r}")
        text = text.replace(old, new)
    for sub in ("logs", "tmp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "site.conf").write_text(text)
    temp = work / "tmp"
    (work / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/logs/error.log;
{"user root root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {work}/site.conf;
}}
""")
    return subprocess.Popen([nginx, "-p", str(work), "-c", str(work / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def wait_https(url: str, proc: subprocess.Popen[bytes], ca: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    context = ssl.create_default_context(cafile=str(ca))
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited with {proc.returncode}")
        try:
            if httpx.get(url, verify=context, timeout=10).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0, help="measured load per setup")
    parser.add_argument("--clients", type=int, default=16, help="concurrent polling clients")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    pg_url = os.environ.get("LUTE_TEST_PG_URL")
    if not pg_url:
        raise SystemExit("LUTE_TEST_PG_URL is not set: eval \"$(launch_scripts/dev/"
                         "start_postgres.sh)\"; export LUTE_TEST_PG_URL")
    from jid_service.auth import issue_token

    work = Path(tempfile.mkdtemp(prefix="jid-ha-bench-"))
    cfg_dir = work / "cfg"
    cfg_dir.mkdir()
    config = cfg_dir / "bench.yaml"
    config.write_text("title: bench\n")
    schema, db_url = fresh_schema(pg_url)
    secret = secrets.token_urlsafe(32)
    settings = {"backend": "slurm", "db_url": db_url, "auth_secret": secret,
                "allowed_config_roots": [str(cfg_dir)], "launcher": str(LAUNCHER),
                "log_dir": str(work / "logs"), "poll_interval": 1.0}
    headers = {"Authorization": f"Bearer {issue_token(secret, 'bench', [EXPERIMENT], 3600)}"}
    print(f"# ha_throughput: {args.clients} clients, {BATCH} documents per request, "
          f"{args.seconds:g} s per setup in {args.rounds} alternating rounds, "
          f"{STORED_JOBS} finished jobs on PostgreSQL")
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[tuple[list[float], int, float]]] = {}
    try:
        docs = populate(db_url, config)
        batches = [docs[i:i + BATCH] for i in range(0, len(docs), BATCH)]
        ports = [free_port_block(), free_port_block()]
        while ports[1] == ports[0]:
            ports[1] = free_port_block()
        for name, port in zip(("replica-a", "replica-b"), ports, strict=True):
            procs.append(start_replica(work, name, settings, port))
        for proc, port, name in zip(procs, ports, ("replica-a", "replica-b"), strict=True):
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=180)
            except SystemExit:
                print((work / name / "jid.log").read_text()[-3000:], file=sys.stderr)
                raise
        ca, cert, key = make_tls(work / "tls")
        proxies = {}
        for label, upstreams in (("nginx -> 1", ports[:1]), ("nginx -> 2", ports)):
            https_port = free_port_block(2, exclude=set(ports))
            proc = start_nginx(work / label.replace(" ", "").replace(">", ""), upstreams,
                               https_port, cert, key)
            procs.append(proc)
            base = f"https://127.0.0.1:{https_port}{PREFIX}"
            wait_https(f"{base}/healthz", proc, ca)
            proxies[label] = base
        targets = {"direct": f"http://127.0.0.1:{ports[0]}/jid/ws/job_statuses",
                   **{label: f"{base}/jid/ws/job_statuses" for label, base in proxies.items()}}
        os.environ["SSL_CERT_FILE"] = str(ca)  # httpx verifies nginx's certificate with it
        slice_seconds = args.seconds / args.rounds
        for _ in range(args.rounds):
            for label, url in targets.items():
                results.setdefault(label, []).append(
                    asyncio.run(load(url, headers, batches, args.clients, slice_seconds)))
    finally:
        for proc in reversed(procs):
            stop(proc)
        drop_schema(pg_url, schema)
        shutil.rmtree(work, ignore_errors=True)

    stats = {label: summarize(rounds) for label, rounds in results.items()}
    print("\njob_statuses, 50 documents per request")
    for label, s in stats.items():
        print(f"  {label:12s} {s['rps']:8.1f} req/s  p50 {s['p50_ms']:6.1f} ms  "
              f"p99 {s['p99_ms']:6.1f} ms  ({int(s['requests'])} requests, "
              f"{int(s['errors'])} errors)")
    two, direct, one = stats["nginx -> 2"], stats["direct"], stats["nginx -> 1"]
    print(f"  ratio (nginx -> 2) / direct:       req/s {two['rps'] / direct['rps']:.2f}, "
          f"p99 {two['p99_ms'] / direct['p99_ms']:.2f}")
    print(f"  ratio (nginx -> 2) / (nginx -> 1): req/s {two['rps'] / one['rps']:.2f}, "
          f"p99 {two['p99_ms'] / one['p99_ms']:.2f}")
    print(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if all(s["errors"] == 0 for s in stats.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
