"""JID throughput, scheduler calls per poll tick and memory, against in-run baselines.

    .venv/bin/python benchmarks/jid_throughput.py [--seconds 15] [--clients 20]

Needs the real Slurm cluster (``launch_scripts/dev/start_slurm.sh``). In one run:

(a) ``POST /jid/ws/job_statuses`` with 50-document batches against a real
    ``jid-service serve`` (slurm backend) under uvicorn: requests/s and p99,
    against a bare FastAPI route that echoes the same payload, served by the
    same uvicorn settings. Target: JID/bare requests/s >= 0.5.
(b) Scheduler calls per poll tick with 200 active jobs (real jobs held in
    Slurm with ``--hold``, cancelled at the end) while the clients of (a)
    poll: every ``squeue``/``sacct``/``scontrol`` the daemon runs goes through a
    PATH shim that logs it and execs the real command. Target: 1 ``squeue``.
(c) The daemon's RSS with 10,000 stored jobs, against the bare app's RSS.
    Target: <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from lute.launch.ports import free_port_block

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = REPO_ROOT / "launch_scripts" / "submit_slurm.sh"
EXPERIMENT = "bench0001"
BATCH = 50
ACTIVE_JOBS = 200
STORED_JOBS = 10_000
SHIMMED = ("squeue", "sacct", "scontrol", "sbatch", "scancel")


# ------------------------------------------------------------ bare baseline ---
def serve_bare(port: int) -> None:
    """The baseline: one FastAPI route echoing the posted list in the JID's envelope."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/jid/ws/job_statuses")
    async def echo(docs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"success": True, "value": docs, "error": None}

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    # the same uvicorn settings jid-service serve uses
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


# ------------------------------------------------------------------ helpers ---
def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(rest.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=10).status_code in (200, 503):
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def write_shims(directory: Path, log: Path) -> None:
    """A logging wrapper per Slurm command, exec'ing the real one."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in SHIMMED:
        real = shutil.which(name)
        if real is None:
            raise SystemExit(f"{name} not found: run launch_scripts/dev/start_slurm.sh")
        shim = directory / name
        shim.write_text(
            "#!/bin/sh\n"
            f"echo {shlex.quote(name)} >> {shlex.quote(str(log))}\n"
            f'exec {shlex.quote(real)} "$@"\n'
        )
        shim.chmod(0o755)


def count_calls(log: Path) -> dict[str, int]:
    counts = dict.fromkeys(SHIMMED, 0)
    if log.exists():
        for line in log.read_text().split():
            counts[line] = counts.get(line, 0) + 1
    return counts


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample family's values matching ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample, _, val = line.rpartition(" ")
        if all(f'{k}="{v}"' in sample for k, v in labels.items()):
            total += float(val)
    return total


# --------------------------------------------------------------- the store ---
def document(job_key: str, config: Path) -> dict[str, Any]:
    return {
        "_id": job_key,
        "arp_root_job_id": "bench-root",
        "experiment": EXPERIMENT,
        "run_num": 1,
        "user": "bench",
        "def_id": "def-bench",
        "def": {
            "_id": "def-bench",
            "name": "Sleeper",
            "executable": str(LAUNCHER),
            "trigger": "MANUAL",
            "location": "S3DF",
            "parameters": f"--taskname Sleeper --config {config} --partition=debug",
            "run_as_user": "bench",
        },
    }


def hold_jobs(count: int, workdir: Path) -> list[str]:
    """Submit ``count`` held Slurm jobs (never started); their ids."""
    ids = []
    for i in range(count):
        out = subprocess.run(
            [
                "sbatch",
                "--parsable",
                "--hold",
                "--job-name=jid-bench",
                f"--comment=bench-{i}",
                f"--output={workdir}/held-%j.out",
                "--wrap",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        ids.append(out.stdout.strip().split(";")[0])
    return ids


def populate(db_url: str, config: Path, held: list[str]) -> list[dict[str, Any]]:
    """Store ``STORED_JOBS`` finished jobs and one active job per held Slurm job."""
    from sqlalchemy import insert

    from jid_service.store import JobRow, JobStore

    store = JobStore(db_url)  # creates the schema
    now = time.time()

    def row(key: str, status: str, raw: str, tool_id: str, code: int | None) -> dict[str, Any]:
        doc = document(key, config)
        return {
            "id": key,
            "experiment": EXPERIMENT,
            "arp_root_job_id": "bench-root",
            "status": status,
            "raw_status": raw,
            "exit_code": code,
            "tool_id": tool_id,
            "log_path": None,
            "user": "bench",
            "document": json.dumps(doc, separators=(",", ":")),
            "created_at": now,
            "updated_at": now,
        }

    finished = [
        row(f"done-{i:05d}", "DONE", "COMPLETED", str(10_000_000 + i), 0)
        for i in range(STORED_JOBS - len(held))
    ]
    active_keys = [f"active-{uuid.uuid4().hex[:12]}" for _ in held]
    active = [
        row(k, "SUBMITTED", "PENDING", t, None) for k, t in zip(active_keys, held, strict=True)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(JobRow), finished + active)
    store.close()
    docs = []
    for key, tool_id in zip(active_keys, held, strict=True):
        doc = document(key, config)
        doc.update(status="SUBMITTED", tool_id=tool_id)
        docs.append(doc)
    return docs


# ---------------------------------------------------------------- the load ---
async def load(
    url: str,
    headers: dict[str, str],
    batches: list[list[dict[str, Any]]],
    clients: int,
    seconds: float,
    warmup: float = 1.0,
) -> tuple[list[float], int, float]:
    """``clients`` loops posting batches for ``seconds`` after ``warmup``.

    Returns the measured latencies, the error count and the measured time.
    """
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as client:

        async def one_client(n: int, until: float, record: bool) -> None:
            nonlocal errors
            i = n
            while time.perf_counter() < until:
                start = time.perf_counter()
                response = await client.post(url, json=batches[i % len(batches)])
                elapsed = time.perf_counter() - start
                i += 1
                if response.status_code != 200 or len(response.json()["value"]) != BATCH:
                    errors += 1
                elif record:
                    latencies.append(elapsed)

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(n, t0 + warmup, False) for n in range(clients)))
        t1 = time.perf_counter()
        await asyncio.gather(*(one_client(n, t1 + seconds, True) for n in range(clients)))
        elapsed = time.perf_counter() - t1
    return latencies, errors, elapsed


def summarize(rounds: list[tuple[list[float], int, float]]) -> dict[str, float]:
    """Requests/s, p50 and p99 over all rounds of one server."""
    latencies = sorted(x for r in rounds for x in r[0])
    elapsed = sum(r[2] for r in rounds)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {
        "requests": len(latencies),
        "errors": sum(r[1] for r in rounds),
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * p99,
    }


def start_jid(work: Path, shim_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """``jid-service serve`` with the shims first on PATH, settings from ``work``."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [str(shim_dir), str(Path(sys.executable).parent), env.get("PATH", "")]
    )
    env["JID_SETTINGS_FILE"] = str(work / "jid.yaml")
    argv = [sys.executable, "-m", "jid_service.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with (work / "jid.log").open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


# -------------------------------------------------------------------- main ---
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measured load per server")
    parser.add_argument("--clients", type=int, default=20, help="concurrent polling clients")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating bare/JID rounds of the measured time"
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0

    from jid_service.auth import issue_token

    work = Path(tempfile.mkdtemp(prefix="jid-bench-"))
    cfg_dir = work / "cfg"
    cfg_dir.mkdir()
    config = cfg_dir / "bench.yaml"
    config.write_text("title: bench\n")
    shim_dir, shim_log = work / "shims", work / "slurm-calls.log"
    write_shims(shim_dir, shim_log)
    secret = secrets.token_urlsafe(32)
    settings = {
        "backend": "slurm",
        "db_url": f"sqlite:///{work / 'jid.db'}",
        "auth_secret": secret,
        "allowed_config_roots": [str(cfg_dir)],
        "launcher": str(LAUNCHER),
        "state_dir": str(work / "state"),
        "log_dir": str(work / "logs"),
        "poll_interval": 1.0,
    }
    (work / "jid.yaml").write_text(yaml.safe_dump(settings))
    headers = {"Authorization": f"Bearer {issue_token(secret, 'bench', [EXPERIMENT], 3600)}"}

    print(
        f"# jid_throughput: {args.clients} clients, {BATCH} documents per request, "
        f"{args.seconds:g} s per server in {args.rounds} alternating rounds, "
        f"{ACTIVE_JOBS} active / {STORED_JOBS} stored jobs"
    )
    t0 = time.monotonic()
    held = hold_jobs(ACTIVE_JOBS, work)
    print(f"submitted {len(held)} held Slurm jobs in {time.monotonic() - t0:.1f} s")
    jid = bare = None
    try:
        docs = populate(settings["db_url"], config, held)
        batches = [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]

        # both servers up at once, their load rounds alternating, so that other
        # work on a shared machine weighs on both alike
        bare_port = free_port_block()
        bare = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(bare_port)])
        wait_http(f"http://127.0.0.1:{bare_port}/healthz", bare)
        port = free_port_block()
        jid = start_jid(work, shim_dir, port)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", jid)
        idle_rss, _ = rss_mb(jid.pid)

        bare_rounds, jid_rounds = [], []
        ticks = statuses_calls = 0.0
        calls = dict.fromkeys(SHIMMED, 0)
        slice_seconds = args.seconds / args.rounds
        for _ in range(args.rounds):
            bare_url = f"http://127.0.0.1:{bare_port}/jid/ws/job_statuses"
            bare_rounds.append(
                asyncio.run(load(bare_url, headers, batches, args.clients, slice_seconds))
            )
            # (b) counts only while the 20 clients poll the JID
            metrics_before = httpx.get(f"{base}/metrics", headers=headers, timeout=30).text
            calls_before = count_calls(shim_log)
            jid_url = f"{base}/jid/ws/job_statuses"
            jid_rounds.append(
                asyncio.run(load(jid_url, headers, batches, args.clients, slice_seconds))
            )
            metrics_after = httpx.get(f"{base}/metrics", headers=headers, timeout=30).text
            calls_after = count_calls(shim_log)
            ticks += metric(metrics_after, "jid_poll_ticks_total", outcome="ok") - metric(
                metrics_before, "jid_poll_ticks_total", outcome="ok"
            )
            statuses_calls += metric(
                metrics_after, "jid_backend_calls_total", operation="statuses"
            ) - metric(metrics_before, "jid_backend_calls_total", operation="statuses")
            for name in SHIMMED:
                calls[name] += calls_after[name] - calls_before[name]
        active = metric(metrics_after, "jid_active_jobs")
        jid_rss, jid_hwm = rss_mb(jid.pid)
        bare_rss, bare_hwm = rss_mb(bare.pid)
    finally:
        for proc in (jid, bare):
            if proc is not None:
                stop(proc)
        subprocess.run(["scancel", *held], capture_output=True, timeout=120, check=False)
        print(f"cancelled the {len(held)} held jobs")

    bare_stats, jid_stats = summarize(bare_rounds), summarize(jid_rounds)
    per_tick = {k: (v / ticks if ticks else float("nan")) for k, v in calls.items()}

    print("\n(a) job_statuses, 50 documents per request")
    for name, stats in (("bare FastAPI echo", bare_stats), ("JID (slurm backend)", jid_stats)):
        print(
            f"  {name:22s} {stats['rps']:8.1f} req/s  p50 {stats['p50_ms']:6.1f} ms  "
            f"p99 {stats['p99_ms']:6.1f} ms  ({int(stats['requests'])} requests, "
            f"{int(stats['errors'])} errors)"
        )
    rps_ratio = jid_stats["rps"] / bare_stats["rps"]
    p99_ratio = jid_stats["p99_ms"] / bare_stats["p99_ms"]
    print(f"  ratio JID/bare: req/s {rps_ratio:.2f} (target >= 0.5), p99 {p99_ratio:.2f}")

    print(
        f"\n(b) poll ticks during the JID load: {ticks:g} (active jobs followed: {active:g}, "
        f"{args.clients} polling clients)"
    )
    print("  scheduler processes run: " + ", ".join(f"{k} {v}" for k, v in calls.items()))
    print(
        f"  per tick: squeue {per_tick['squeue']:.2f} (target 1), "
        f"sacct {per_tick['sacct']:.2f}, scontrol {per_tick['scontrol']:.2f}, "
        f"backend.statuses() {statuses_calls / ticks if ticks else float('nan'):.2f}"
    )
    print(
        f"  squeue per job_statuses request: {calls['squeue'] / max(jid_stats['requests'], 1):.4f}"
    )

    print(f"\n(c) memory with {STORED_JOBS} stored jobs")
    print(
        f"  JID RSS idle {idle_rss:.1f} MB, after load {jid_rss:.1f} MB, peak {jid_hwm:.1f} MB "
        f"(target <= 150 MB)"
    )
    print(
        f"  bare app RSS {bare_rss:.1f} MB (peak {bare_hwm:.1f}); ratio JID/bare peak "
        f"{jid_hwm / bare_hwm:.2f}"
    )
    # a tick may straddle a round's edges: allow one squeue either way per round
    squeue_ok = ticks > 0 and abs(calls["squeue"] - ticks) <= args.rounds
    ok = rps_ratio >= 0.5 and squeue_ok and jid_hwm <= 150 and jid_stats["errors"] == 0
    print(f"\nall targets met: {ok}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
