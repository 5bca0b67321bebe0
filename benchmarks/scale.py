"""Scale: N steps waiting at once on one triggerer and one JID, against N DateTimeSensorAsync.

Starts a private dev stack (Airflow 3 on SQLite, one triggerer, a JID with the
``local`` backend allowed to run all N jobs at once) on loopback ports, then
runs, in the same stack and one after the other:

1. baseline: ``lute_bench_scale_sensors``, N of Airflow's own deferrable
   ``DateTimeSensorAsync`` (ended from the trigger) waiting for the run's
   start + ``--seconds`` + 3 s per sensor (they defer from the worker's few
   slots, so all of them must have time to be waiting before the target);
2. ``lute_bench_scale``: N ``Sleeper`` steps of ``--seconds``, each started in
   the triggerer (no worker slot), so all N wait there for their jobs.

Sampled every second while each run lasts: CPU of the triggerer (its process
tree: supervisor and trigger runner) and of the JID's own process (not its
jobs), the triggerer's RSS, and the JID's request counts from its
``/metrics`` (``jid_request_seconds_count``, less the sampler's own reads of
``/metrics``). Printed per run: CPU in % of a
core over the whole run and over the waiting window (from the moment all N
are deferred to the first success), peak RSS, JID requests per second in the
waiting window (all routes and ``/wait`` alone; a long poll counts when it
returns), and the latency from the end
of the wait to task success: for sensors, task end minus target time; for
steps, task end minus the job's end as its results DB records it, paired in
order of time (the k-th job end with the k-th task success: the steps all
sleep the same time, so this is each step's latency when they end in the
order their jobs do). p50 and p99 of those.

A benchmark, not a test: it prints figures and stops by itself.

    .venv/bin/python benchmarks/scale.py [--steps 50] [--seconds 60] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from lute.launch.airflow_api import AirflowClient
from lute.launch.ports import free_port_block
from lute.launch.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "lute_bench_scale"
SENSOR_DAG_ID = "lute_bench_scale_sensors"
_TICK = os.sysconf("SC_CLK_TCK")
_COUNT = re.compile(r'^jid_request_seconds_count\{([^}]*)\}\s+([0-9.e+]+)$', re.M)


def write_config(directory: Path, seconds: float) -> Path:
    """A copy of config/test.yaml whose Sleep step lasts ``seconds``."""
    work = directory / "work"
    work.mkdir(parents=True, exist_ok=True)
    text = (REPO_ROOT / "config" / "test.yaml").read_text()
    text = re.sub(r"(?m)^work_dir:.*$", f'work_dir: "{work}"', text)
    text = re.sub(
        r"(?ms)^Sleep:\n(  .*\n)+", f"Sleep:\n  seconds: {seconds}\n  print_interval: 30\n", text
    )
    path = directory / "bench.yaml"
    path.write_text(text)
    return path


def children(pid: int) -> list[int]:
    """``pid`` and all its descendants now."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, with that of its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process alone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def request_counts(http: httpx.Client) -> dict[str, float]:
    """The JID's request counts by route (all methods and statuses)."""
    counts: dict[str, float] = {}
    for labels, value in _COUNT.findall(http.get("/metrics").text):
        route = re.search(r'route="([^"]*)"', labels)
        key = route.group(1) if route else "?"
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


class Sampler(threading.Thread):
    """Samples CPU, RSS and JID request counts every second until stopped."""

    def __init__(self, triggerer: int, jid: int, jid_url: str):
        super().__init__(daemon=True)
        self.triggerer, self.jid = triggerer, jid
        self.http = httpx.Client(base_url=jid_url, timeout=10)
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def sample(self) -> dict:
        """One sample now."""
        tree = children(self.triggerer)
        return {
            "t": time.monotonic(),
            "triggerer_cpu": sum(cpu_seconds(p) for p in tree),
            "triggerer_rss": rss_bytes(tree),
            "jid_cpu": own_cpu_seconds(self.jid),
            "requests": request_counts(self.http),
        }

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stopped.is_set():
            self.samples.append(self.sample())
            self.stopped.wait(1.0)
        self.samples.append(self.sample())


def window(samples: list[dict], start: float, end: float) -> dict:
    """CPU % of a core and JID requests per second between ``start`` and ``end``."""
    inside = [s for s in samples if start <= s["t"] <= end]
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    span = last["t"] - first["t"]
    # this sampler's own /metrics reads are not the triggerer's requests
    total = sum(v for k, v in last["requests"].items() if k != "/metrics") - sum(
        v for k, v in first["requests"].items() if k != "/metrics"
    )
    wait = sum(v for k, v in last["requests"].items() if k.endswith("/wait")) - sum(
        v for k, v in first["requests"].items() if k.endswith("/wait")
    )
    triggerer = last["triggerer_cpu"] - first["triggerer_cpu"]
    return {
        "seconds": round(span, 1),
        "triggerer_cpu_pct": round(100 * triggerer / span, 2),
        "jid_cpu_pct": round(100 * (last["jid_cpu"] - first["jid_cpu"]) / span, 2),
        "jid_requests_per_s": round(total / span, 2),
        "jid_wait_requests_per_s": round(wait / span, 2),
    }


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1), nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 3)


def _time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def follow(client: AirflowClient, sampler: Sampler, dag_id: str, conf: dict, steps: int,
           timeout: float) -> dict:
    """Trigger one run and follow it to its end; its figures."""
    run_id = f"scale-{int(time.time() * 1000)}"
    triggered_wall = time.time()
    start = time.monotonic()
    client.trigger(dag_id, run_id, conf)
    all_deferred = first_success = None
    while True:
        tis = client.task_instances(dag_id, run_id)
        states = [ti.get("state") for ti in tis]
        now = time.monotonic()
        if all_deferred is None and states.count("deferred") == steps:
            all_deferred = now
        if first_success is None and "success" in states:
            first_success = now
        run = client.dag_run(dag_id, run_id)
        if run["state"] in ("success", "failed"):
            break
        if now - start > timeout:
            raise SystemExit(f"{dag_id} did not finish in {timeout:.0f} s")
        time.sleep(0.5)
    end = time.monotonic()
    result = {
        "dag": dag_id,
        "state": run["state"],
        "wall_s": round(end - start, 1),
        "all_deferred_after_s": None if all_deferred is None else round(all_deferred - start, 1),
        "whole_run": window(sampler.samples, start, end),
        "waiting": window(sampler.samples, all_deferred or start, first_success or end),
        "triggerer_peak_rss_mb": round(
            max((s["triggerer_rss"] for s in sampler.samples if start <= s["t"] <= end),
                default=0) / 1e6, 1),
    }
    return result | {"_tis": tis, "_triggered_wall": triggered_wall}


def latencies(ends: list[float], successes: list[float]) -> dict:
    """p50/p99 of success minus end, paired in order of time."""
    gaps = [s - e for e, s in zip(sorted(ends), sorted(successes), strict=False)]
    return {"n": len(gaps), "p50_s": percentile(gaps, 0.5), "p99_s": percentile(gaps, 0.99),
            "max_s": round(max(gaps), 3) if gaps else None}


def job_ends(work: Path, since: float) -> list[float]:
    """When each Sleep run recorded its end in the results DB, after ``since``."""
    with sqlite3.connect(work / "lute.db") as conn:
        rows = conn.execute("SELECT ended_at FROM task_runs WHERE task = 'Sleep'"
                            " AND ended_at IS NOT NULL").fetchall()
    return [t for t in (_time(r[0]) for r in rows) if t >= since]


def main(argv: list[str] | None = None) -> int:
    """Run both workloads and print their figures (JSON lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="steps waiting at once (N)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each wait")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    args = parser.parse_args(argv)

    state_dir = Path(tempfile.mkdtemp(prefix="lute-scale-"))
    config = write_config(state_dir / "cfg", args.seconds)
    airflow_port = free_port_block(3)
    jid_port = free_port_block(1, exclude=set(range(airflow_port, airflow_port + 3)))
    stack = Stack(
        state_dir / "stack",
        airflow_port=airflow_port,
        jid_port=jid_port,
        backend="local",
        parallelism=4,
        allowed_config_roots=[str(state_dir)],
        extra_env={"LUTE_BENCH_SCALE_STEPS": str(args.steps),
                   "LUTE_WORKFLOW_DEFS_DIR": str(state_dir / "defs")},
        jid_env={"JID_LOCAL_MAX_PARALLEL": str(args.steps)},
        timeout=300.0,
    )
    print(f"starting the stack in {state_dir} (Airflow :{airflow_port}, JID :{jid_port})")
    t0 = time.monotonic()
    stack.start()
    print(f"stack healthy after {time.monotonic() - t0:.1f} s")
    try:
        pids = {r.name: r.pid for r in stack.running()}
        triggerer = next(pid for name, pid in pids.items() if "triggerer" in name)
        jid = next(pid for name, pid in pids.items() if "jid" in name)
        client = AirflowClient(
            stack.airflow_url, username=stack.username, password=stack.password, timeout=30.0
        )
        client.login()
        for dag_id in (SENSOR_DAG_ID, DAG_ID):
            client.wait_for_dag(dag_id, timeout=300)
            client.unpause(dag_id)
        sampler = Sampler(triggerer, jid, stack.jid_url)
        sampler.start()
        budget = 10 * args.seconds + 20 * args.steps + 300
        # the sensors defer from worker slots, a few at a time: their common
        # target leaves room for all of them to be waiting before it comes
        sensor_wait = args.seconds + 3 * args.steps
        sensors = follow(client, sampler, SENSOR_DAG_ID, {"seconds": sensor_wait},
                         args.steps, budget + sensor_wait)
        sensor_gaps = []
        for ti in sensors.pop("_tis"):
            if ti.get("end_date") and ti.get("rendered_fields", {}).get("target_time"):
                wanted = _time(ti["rendered_fields"]["target_time"])
                sensor_gaps.append(_time(ti["end_date"]) - wanted)
        sensors.pop("_triggered_wall")
        sensors["end_to_success"] = {
            "n": len(sensor_gaps), "p50_s": percentile(sensor_gaps, 0.5),
            "p99_s": percentile(sensor_gaps, 0.99),
        }
        print(json.dumps(sensors))
        conf = {
            "experiment": "bench", "run_id": "1", "ARP_LOCATION": "local",
            "ARP_ROOT_JOB_ID": f"scale-{int(time.time())}", "user": getpass.getuser(),
            "lute_location": str(REPO_ROOT),
            "lute_params": {"config_file": str(config), "debug": False}, "slurm_params": [],
        }
        steps = follow(client, sampler, DAG_ID, conf, args.steps, budget)
        tis = steps.pop("_tis")
        since = steps.pop("_triggered_wall")
        successes = [_time(ti["end_date"]) for ti in tis if ti.get("state") == "success"]
        steps["end_to_success"] = latencies(job_ends(state_dir / "cfg" / "work", since),
                                            successes)
        print(json.dumps(steps))
        sampler.stopped.set()
        sampler.join(timeout=10)
        ratio = None
        if sensors["waiting"] and steps["waiting"] and sensors["waiting"]["triggerer_cpu_pct"]:
            ratio = round(steps["waiting"]["triggerer_cpu_pct"]
                          / sensors["waiting"]["triggerer_cpu_pct"], 2)
        print(json.dumps({"steps": args.steps, "seconds": args.seconds,
                          "triggerer_cpu_ratio_waiting_steps_over_sensors": ratio}))
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
