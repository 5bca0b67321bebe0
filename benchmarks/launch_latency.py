"""Launcher latency: log streaming delay, and managed vs PythonOperator chain overhead.

Starts its own dev stack (Airflow 3 + JID, local backend) in a temporary
directory, then measures, in the same Airflow:

1. log delay: a managed ``Sleeper`` (``print_interval: 0.5``) prints a line
   every 0.5 s carrying its wall-clock write time; the launcher streams it from
   the JID; the delay is the time this script reads the line from the
   launcher's stdout minus the time written in it. Median, p90, max.
   Target: median <= 2 s.
2. chain overhead: trigger-to-success of ``lute_bench_chain`` (3 no-op managed
   tasks through the JID) against ``lute_bench_chain_python`` (3 no-op
   PythonOperators), interleaved, ``--repeats`` each; wall time from the
   trigger POST to seeing ``success`` (polled every 0.1 s) and Airflow's own
   ``end_date - queued_at``. Target: median ratio <= 1.6 with the defaults. The managed chain runs
   three ways: the operator's defaults (a short job ends during the inline wait
   of ``defer_after`` seconds), deferring at once (``jid_defer_after: 0``: the
   triggerer's round trip, the task ended from the trigger) and waiting in the
   worker (``jid_deferrable: false``).

Usage: .venv/bin/python benchmarks/launch_latency.py [--repeats 3] [--seconds 12]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from lute.launch.arguments import parse_args
from lute.launch.context import arp_context, build_conf
from lute.launch.ports import free_port_block
from lute.launch.stack import REPO_ROOT, Stack

TICK = re.compile(r"^\[Sleeper\] .*tick (\d+) at [\d.]+ s \(wall ([\d.]+)\)")


def make_config(directory: Path, seconds: float, interval: float) -> Path:
    """config/test.yaml with the Sleep section set for this benchmark."""
    (directory / "work_dirs" / "test").mkdir(parents=True, exist_ok=True)
    cfg_dir = directory / "cfg"
    cfg_dir.mkdir(exist_ok=True)
    text = (REPO_ROOT / "config" / "test.yaml").read_text()
    text = re.sub(r"Sleep:\n  seconds: [\d.]+\n  print_interval: [\d.]+",
                  f"Sleep:\n  seconds: {seconds}\n  print_interval: {interval}", text)
    assert f"seconds: {seconds}" in text, "config/test.yaml has no Sleep section to adjust"
    path = cfg_dir / f"bench_{seconds}_{interval}.yaml"
    path.write_text(text)
    return path


def log_delays(stack: Stack, cfg: Path, defs_dir: Path) -> list[float]:
    """Stream a Sleeper's ticks through the launcher; the delay of each line."""
    defn = cfg.parent / "sleeper.yaml"
    defn.write_text("task_name: Sleeper\nnext: []\n")
    env = {k: v for k, v in os.environ.items() if k != "Authorization"}
    env.update(stack.launcher_env(), LUTE_WORKFLOW_DEFS_DIR=str(defs_dir))
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "launch_scripts" / "launch_airflow.py"),
         "-c", str(cfg), "-W", str(defn), "-e", "bench", "-r", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    delays = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen = time.time()
        m = TICK.match(line)
        if m:
            delays.append(seen - float(m.group(2)))
    rc = proc.wait()
    if rc != 0:
        raise SystemExit(f"the launcher failed (rc {rc}) during the log benchmark")
    return delays


class Api:
    """Just enough of Airflow's REST API to trigger and time runs."""

    def __init__(self, stack: Stack) -> None:
        self.http = httpx.Client(base_url=stack.airflow_url, timeout=30)
        tok = self.http.post("/auth/token", json={"username": stack.username,
                                                  "password": stack.password})
        tok.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {tok.json()['access_token']}"

    def wait_dag(self, dag_id: str, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while self.http.get(f"/api/v2/dags/{dag_id}").status_code != 200:
            if time.monotonic() > end:
                raise SystemExit(f"{dag_id} was not parsed in {timeout} s")
            time.sleep(0.5)
        self.http.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def failure(self, dag_id: str, run_id: str) -> str:
        """The error events of the run's failed task instances."""
        base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        lines = []
        for ti in self.http.get(base).json()["task_instances"]:
            if ti["state"] != "failed":
                continue
            log = self.http.get(f"{base}/{ti['task_id']}/logs/{ti['try_number']}",
                                params={"full_content": "true"},
                                headers={"Accept": "application/json"}).json()
            for event in log.get("content", []):
                if isinstance(event, dict) and event.get("level") in ("error", "critical"):
                    detail = (event.get("error_detail") or [{}])[0].get("exc_value", "")
                    lines.append(f"  {ti['task_id']}: {event.get('event')} {detail}")
        return "\n".join(lines) or "  (no error events)"

    def breakdown(self, dag_id: str, run_id: str) -> str:
        """Each step's time in Airflow (start to end) and the gaps between steps."""
        tis = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        run = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
        parts, last = [], dt.datetime.fromisoformat(run["queued_at"])
        for ti in sorted(tis["task_instances"], key=lambda t: t["start_date"]):
            start = dt.datetime.fromisoformat(ti["start_date"])
            end = dt.datetime.fromisoformat(ti["end_date"])
            parts.append(f"wait {(start - last).total_seconds():.2f} + "
                         f"{ti['task_id']} {(end - start).total_seconds():.2f}")
            last = end
        return "; ".join(parts)

    def timed_run(self, dag_id: str, conf: dict) -> tuple[float, float]:
        """(wall s from trigger to success seen, Airflow's end_date - queued_at)."""
        run_id = f"bench_{uuid.uuid4().hex[:12]}"
        t0 = time.monotonic()
        self.http.post(f"/api/v2/dags/{dag_id}/dagRuns",
                       json={"dag_run_id": run_id, "logical_date": None, "conf": conf}
                       ).raise_for_status()
        while True:
            run = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
            if run["state"] in ("success", "failed"):
                wall = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 300:
                raise SystemExit(f"{dag_id} run {run_id} did not finish in 300 s")
            time.sleep(0.1)
        if run["state"] != "success":
            raise SystemExit(f"{dag_id} run {run_id} failed:\n{self.failure(dag_id, run_id)}")
        recorded = (dt.datetime.fromisoformat(run["end_date"])
                    - dt.datetime.fromisoformat(run["queued_at"])).total_seconds()
        self.last_breakdown = self.breakdown(dag_id, run_id)
        return wall, recorded


def main() -> int:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0, help="Sleeper run time")
    parser.add_argument("--airflow-port", type=int, help="default: three free ports in a row")
    parser.add_argument("--jid-port", type=int, help="default: a free port")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs, DBs)")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lute-bench-") as tmp:
        root = Path(opts.keep) if opts.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        defs_dir = root / "defs"
        airflow_port = opts.airflow_port or free_port_block(3)
        jid_port = opts.jid_port or free_port_block(
            1, exclude=range(airflow_port, airflow_port + 3))
        stack = Stack(root / "stack", airflow_port, jid_port,
                      extra_env={"LUTE_WORKFLOW_DEFS_DIR": str(defs_dir)},
                      wait_for_dags=["lute_bench_chain", "lute_bench_chain_python"],
                      # start-up is not measured; a loaded machine needs more than the default
                      timeout=600.0)
        t0 = time.monotonic()
        with stack:
            print(f"stack healthy in {time.monotonic() - t0:.1f} s")
            delays = log_delays(stack, make_config(root, opts.seconds, 0.5), defs_dir)
            if not delays:
                raise SystemExit("no tick lines were streamed")
            delays.sort()
            print(f"log delay over {len(delays)} lines: median {statistics.median(delays):.2f} s,"
                  f" p90 {delays[int(0.9 * (len(delays) - 1))]:.2f} s, max {delays[-1]:.2f} s"
                  f" (target: median <= 2 s)")

            api = Api(stack)
            for dag in ("lute_bench_chain", "lute_bench_chain_python"):
                api.wait_dag(dag)
            cfg = make_config(root, 0, 0.5)
            args, slurm = parse_args(["-c", str(cfg), "-e", "bench", "-r", "2"])
            names = ("managed (defaults)", "managed (deferring at once)",
                     "managed (waiting in the worker)")
            series: dict[str, list[tuple[float, float]]] = {name: [] for name in (*names, "python")}
            for _ in range(opts.repeats):  # interleaved so drift hits all alike
                ctx = arp_context(args, {}, stack.jid_token)
                conf = build_conf(args, ctx, slurm, None, user="bench",
                                  now=dt.datetime.now(dt.UTC))
                for name, dag, run_conf in (
                    ("managed (defaults)", "lute_bench_chain", conf),
                    # no inline wait: every step goes through the triggerer
                    ("managed (deferring at once)", "lute_bench_chain",
                     dict(conf, jid_defer_after=0)),
                    # the operator honours conf["jid_deferrable"] (False: no triggerer hop)
                    ("managed (waiting in the worker)", "lute_bench_chain",
                     dict(conf, jid_deferrable=False)),
                    ("python", "lute_bench_chain_python", {}),
                ):
                    series[name].append(api.timed_run(dag, run_conf))
                    print(f"  {name}: {api.last_breakdown}")
            for label, idx in (("wall, trigger to success seen", 0),
                               ("Airflow end_date - queued_at", 1)):
                base = statistics.median(r[idx] for r in series["python"])
                print(f"3-step chain, {label}: python median {base:.2f} s "
                      f"{[round(r[idx], 2) for r in series['python']]}")
                for name in names:
                    m = statistics.median(r[idx] for r in series[name])
                    print(f"  {name}: median {m:.2f} s "
                          f"{[round(r[idx], 2) for r in series[name]]}, "
                          f"ratio to python {m / base:.2f} (target <= 1.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
