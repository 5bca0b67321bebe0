"""Scale: N steps waiting at once on one triggerer and one JID, against N DateTimeSensorAsync.

Starts a private dev stack (Airflow 3 on SQLite, one triggerer, a JID with
the ``local`` or the ``slurm`` backend) on loopback ports, then runs, in the
same stack and one after the other:

1. baseline: ``lute_bench_scale_sensors``, N of Airflow's own deferrable
   ``DateTimeSensorAsync``, started in the triggerer and ended from the
   trigger, all waiting for one target time (``--seconds`` after all of them
   can be waiting);
2. ``lute_bench_scale``: N ``Sleeper`` steps, each started in the triggerer
   (no worker slot), so all N wait there for their jobs. ``local``: all N jobs
   run at once and sleep ``--seconds``. ``slurm``: the jobs are submitted to
   the real Slurm with ``--begin=now+<1 h>`` (the JID allows ``--begin`` for
   this run), so they stay pending while every step waits ``--seconds``;
   then the benchmark releases them (``scontrol update StartTime=now``), at
   most ``--concurrent`` of its own unfinished at once, each sleeping
   ``--job-seconds``; with ``--release-count K`` only the first K, the
   others' jobs then cancelled (their steps fail), so a large N's latencies
   are measured while the rest still wait. It touches only the jobs the JID
   lists for its run whose Slurm comment is ``jid:<_id>`` of that job, and
   cancels any left at the end.

Sampled every second while each run lasts: CPU of the triggerer (its process
tree: supervisor and trigger runner) and of the JID's own process (not its
jobs), the triggerer's RSS, the 1-minute load average, and the JID's counters
from its ``/metrics``: requests by route (less the benchmark's own reads of
``/metrics`` and ``/jobs``), backend calls by operation, poller ticks.
Printed per run: CPU in % of a core over the whole run and over the waiting
window (sensors: from all N triggers started to the target; local steps:
from all N deferred to the first success;
slurm steps: from all N jobs submitted to their release), peak RSS and
the RSS at the end of each window, JID
requests per second (all routes and ``/wait`` alone; a long poll counts when
it returns), ticks per second and ``statuses`` calls (one ``squeue`` each)
per tick, and the latency from the end of the wait to task success, as n,
p50, p99, max: sensors: task end minus the target time; local steps: task end
minus the job's end as its results DB records it, paired in order of time;
slurm steps, paired per step through its ``_id``: task end minus the later of
the Task's recorded end and sacct's ``End`` (whole seconds, so an upper
bound), and the part after the JID stored the job ``DONE``.

A benchmark, not a test: it prints figures (JSON lines), stops by itself and
stops the processes it started.

    .venv/bin/python benchmarks/scale.py [--steps 50] [--seconds 60] [--backend local|slurm]
        [--job-seconds 1] [--concurrent 2] [--release-count K] [--poll-interval 1] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from scale_probes import Sampler, peak_rss_mb, spread, window
from scale_slurm import OwnJobs, Releaser

from jid_service.slurm_options import DEFAULT_SLURM_OPTIONS
from lute.airflow.control_document import step_uuid
from lute.launch.airflow_api import AirflowClient
from lute.launch.ports import free_port_block
from lute.launch.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "lute_bench_scale"
SENSOR_DAG_ID = "lute_bench_scale_sensors"
SPREAD_S = 10
"""The sensors' targets spread over this many seconds (as ``workflows/airflow/bench_scale.py``)."""
STARTED_LINE = "Start from trigger enabled for task"
"""What the triggerer logs as it starts a task's trigger (Airflow 3's triggerer_job_runner)."""
HOLD_S = 3600
"""How far ahead the slurm steps' jobs begin unless released (they are released or cancelled)."""


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


def _time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def task_instances(client: AirflowClient, dag_id: str, run_id: str) -> list[dict]:
    """All the run's task instances (the API pages them, 100 at most per page by default)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    found: list[dict] = []
    while True:
        page = client.request("GET", path, params={"limit": 100, "offset": len(found)})
        found.extend(page["task_instances"])
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


class Run:
    """One DAG run followed to its end, with the moments the figures are cut at."""

    def __init__(self, client: AirflowClient, dag_id: str, steps: int, timeout: float) -> None:
        self.client, self.dag_id, self.steps, self.timeout = client, dag_id, steps, timeout
        self.run_id = f"scale-{int(time.time() * 1000)}"
        self.moments: dict[str, float] = {}
        self.tis: list[dict] = []
        self.state = "queued"

    def trigger(self, conf: dict) -> None:
        """Start the run."""
        self.moments["triggered"] = time.monotonic()
        self.client.trigger(self.dag_id, self.run_id, conf)

    def poll(self) -> bool:
        """Look once; True when the run has ended."""
        self.tis = task_instances(self.client, self.dag_id, self.run_id)
        states = [ti.get("state") for ti in self.tis]
        now = time.monotonic()
        if states.count("deferred") == self.steps:
            self.moments.setdefault("all_deferred", now)
        if "success" in states:
            self.moments.setdefault("first_success", now)
        self.state = self.client.dag_run(self.dag_id, self.run_id)["state"]
        if self.state in ("success", "failed"):
            self.moments["end"] = now
            return True
        if now - self.moments["triggered"] > self.timeout:
            raise SystemExit(f"{self.dag_id} did not finish in {self.timeout:.0f} s")
        return False

    def until(self, done, pause: float = 2.0) -> None:
        """Poll until ``done()`` or the run's end."""
        while not self.poll() and not done():
            time.sleep(pause)

    def figures(self, sampler: Sampler, waiting: tuple[str, str]) -> dict:
        """The run's figures; ``waiting`` names the moments that bound the waiting window."""
        m = self.moments
        start, end = m["triggered"], m.get("end", time.monotonic())
        return {
            "dag": self.dag_id, "state": self.state, "steps": self.steps,
            "wall_s": round(end - start, 1),
            "all_deferred_after_s": round(m["all_deferred"] - start, 1)
            if "all_deferred" in m else None,
            "whole_run": window(sampler.samples, start, end),
            "waiting": window(sampler.samples, m.get(waiting[0], start), m.get(waiting[1], end)),
            "triggerer_peak_rss_mb": peak_rss_mb(sampler.samples, start, end),
        }


def publish_target(client: AirflowClient, target_file: Path, target: dt.datetime,
                   timeout: float) -> bool:
    """Give the sensor DAG a fixed target; whether the DAG processor read it within ``timeout``."""
    text = target.isoformat()
    target_file.write_text(text)
    deadline = time.monotonic() + timeout
    while text not in (client.get_dag(SENSOR_DAG_ID).get("description") or ""):
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def triggers_started(log: Path) -> int:
    """How many triggers the triggerer has started from their task (its log says each)."""
    try:
        return log.read_text(errors="replace").count(STARTED_LINE)
    except OSError:
        return 0


def run_sensors(client: AirflowClient, sampler: Sampler, args, target_file: Path,
                triggerer_log: Path) -> dict:
    """The baseline: N DateTimeSensorAsync started in the triggerer, one target time."""
    parse_wait = 30.0
    for _ in range(4):
        # room to be read, then for the triggerer to start all N (a loaded
        # one takes up to a second each), then the wait itself
        ahead = parse_wait + 10 + 0.8 * args.steps + args.seconds
        target = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead)
        if publish_target(client, target_file, target, parse_wait):
            break
    else:
        raise SystemExit("the sensor DAG did not take its target time")
    run = Run(client, SENSOR_DAG_ID, args.steps, 10 * args.seconds + 2 * args.steps + 600)
    started_before = triggers_started(triggerer_log)
    run.trigger({})
    run.moments["target"] = time.monotonic() + target.timestamp() - time.time()

    def all_started() -> bool:
        if triggers_started(triggerer_log) - started_before < args.steps:
            return False
        # a deferred task is not yet a running trigger: the window starts once all run
        run.moments.setdefault("all_started", time.monotonic() + 2.0)
        return True

    run.until(all_started, pause=1.0)
    run.until(lambda: False)
    # each sensor waits for the target plus (its index % SPREAD_S) seconds
    gaps = [_time(ti["end_date"]) - target.timestamp() - int(ti["task_id"][1:]) % SPREAD_S
            for ti in run.tis if ti.get("end_date")]
    started = run.moments.get("all_started")
    return run.figures(sampler, ("all_started", "target")) | {
        "all_started_before_target_s": round(run.moments["target"] - started, 1)
        if started else None,
        "end_to_success": spread(gaps),
    }


def step_conf(config: Path, slurm_params: list[str]) -> dict:
    """The conf of a run of the steps' DAG."""
    return {
        "experiment": "bench", "run_id": "1", "ARP_LOCATION": "local",
        "ARP_ROOT_JOB_ID": f"scale-{time.time_ns()}", "user": getpass.getuser(),
        "lute_location": str(REPO_ROOT),
        "lute_params": {"config_file": str(config), "debug": False},
        "slurm_params": slurm_params,
    }


def run_local_steps(client: AirflowClient, sampler: Sampler, args, config: Path) -> dict:
    """N Sleeper steps on the ``local`` backend, all running at once."""
    run = Run(client, DAG_ID, args.steps, 10 * args.seconds + 20 * args.steps + 300)
    since = time.time()
    run.trigger(step_conf(config, []))
    run.until(lambda: False, pause=0.5)
    successes = sorted(_time(ti["end_date"]) for ti in run.tis if ti.get("state") == "success")
    ends = sorted(t for t in task_ends(config.parent / "work").values() if t >= since)
    # the steps all sleep the same time: the k-th job end goes with the k-th success
    gaps = [s - e for e, s in zip(ends, successes, strict=False)]
    return run.figures(sampler, ("all_deferred", "first_success")) | {
        "end_to_success": spread(gaps)}


def run_slurm_steps(client: AirflowClient, sampler: Sampler, args, config: Path,
                    stack: Stack) -> dict:
    """N Sleeper steps on the real Slurm: held pending while all wait, then released."""
    conf = step_conf(config, ["--cpus-per-task=1", "--mem=100M", "--time=10",
                              f"--begin=now+{HOLD_S}"])
    jobs = OwnJobs(stack.jid_url, stack.jid_token, conf["ARP_ROOT_JOB_ID"])
    run = Run(client, DAG_ID, args.steps, args.steps * 30 + 10 * args.seconds + 600)
    try:
        run.trigger(conf)
        run.until(lambda: jobs.refresh() >= args.steps)
        if len(jobs.by_tool_id) < args.steps:
            raise SystemExit(f"only {len(jobs.by_tool_id)} of {args.steps} jobs were submitted")
        run.moments["all_submitted"] = time.monotonic()
        time.sleep(args.seconds)  # every step waits for a pending job
        run.moments["release"] = time.monotonic()
        releaser = Releaser(jobs, args.concurrent, time.monotonic() + run.timeout,
                            args.release_count)
        releaser.start()
        run.until(lambda: not releaser.is_alive())
        run.moments["released_ended"] = time.monotonic()
        if not releaser.is_alive() and run.state not in ("success", "failed"):
            # only some were released: the run is marked failed (the waiting
            # steps end without a worker resuming each) and their jobs cancelled
            run.poll()
            run.client.mark_run_failed(DAG_ID, run.run_id)
            jobs.cancel_all()
            run.moments["end"] = time.monotonic()
        releaser.stopped.set()
        releaser.join(timeout=30)
        if releaser.error:
            raise SystemExit(f"releasing the jobs failed: {releaser.error}")
        figures = run.figures(sampler, ("all_submitted", "release"))
        figures["releasing"] = window(sampler.samples, run.moments["release"],
                                      run.moments["released_ended"])
        figures["released"] = len(releaser.released)
        figures["submit_s"] = round(run.moments["all_submitted"] - run.moments["triggered"], 1)
        figures |= slurm_latencies(run, jobs, stack, config)
        return figures
    finally:
        jobs.cancel_all()


def slurm_latencies(run: Run, jobs: OwnJobs, stack: Stack, config: Path) -> dict:
    """Job end to task success per step, paired through the step's ``_id``."""
    tool_of = {_id: tool for tool, _id in jobs.by_tool_id.items()}
    sacct_ends = jobs.ends()
    task_end = task_ends(config.parent / "work")
    with sqlite3.connect(stack.state_dir / "jid" / "jid.db") as conn:
        seen = dict(conn.execute("SELECT tool_id, updated_at FROM jid_jobs WHERE status = 'DONE'"))
    upper, after_sacct, after_jid = [], [], []
    for ti in run.tis:
        if ti.get("state") != "success" or not ti.get("end_date"):
            continue
        tool = tool_of.get(step_uuid(DAG_ID, run.run_id, ti["task_id"], ti["try_number"],
                                     ti.get("map_index", -1)))
        if tool is None or tool not in sacct_ends:
            continue
        success = _time(ti["end_date"])
        # the job ended after the Task recorded its end and within the second
        # sacct names: measured from the later of the two, the latency is an
        # upper bound
        upper.append(success - max(sacct_ends[tool], task_end.get(tool, 0.0)))
        after_sacct.append(success - sacct_ends[tool])
        if tool in seen:
            after_jid.append(success - seen[tool])
    return {"end_to_success": spread(upper), "sacct_end_to_success": spread(after_sacct),
            "jid_seen_to_success": spread(after_jid)}


def task_ends(work: Path) -> dict[str, float]:
    """When each Sleep run recorded its end in the results DB, by Slurm job id (or row id)."""
    with sqlite3.connect(work / "lute.db") as conn:
        rows = conn.execute("SELECT id, slurm_job_id, ended_at FROM task_runs"
                            " WHERE task = 'Sleep' AND ended_at IS NOT NULL").fetchall()
    return {str(job or f"row{row}"): _time(end) for row, job, end in rows}


def main(argv: list[str] | None = None) -> int:
    """Run both workloads and print their figures (JSON lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="steps waiting at once (N)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each wait")
    parser.add_argument("--backend", choices=("local", "slurm"), default="local")
    parser.add_argument("--job-seconds", type=float, default=1.0,
                        help="slurm: how long each job sleeps once released")
    parser.add_argument("--concurrent", type=int, default=2,
                        help="slurm: most own jobs released and unfinished at once")
    parser.add_argument("--release-count", type=int, default=None,
                        help="slurm: release only this many jobs (the first), cancel the rest")
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="slurm: the JID's poll interval (its default)")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    args = parser.parse_args(argv)
    slurm = args.backend == "slurm"

    state_dir = Path(tempfile.mkdtemp(prefix="lute-scale-"))
    config = write_config(state_dir / "cfg", args.job_seconds if slurm else args.seconds)
    target_file = state_dir / "sensor_target"
    airflow_port = free_port_block(3)
    jid_port = free_port_block(1, exclude=set(range(airflow_port, airflow_port + 3)))
    jid_env = {"JID_LOCAL_MAX_PARALLEL": str(args.steps)}
    if slurm:
        jid_env |= {"JID_POLL_INTERVAL": str(args.poll_interval),
                    # the steps' jobs are held with a begin time
                    "JID_SLURM_ALLOWED_OPTIONS": json.dumps([*DEFAULT_SLURM_OPTIONS, "begin"])}
    stack = Stack(
        state_dir / "stack",
        airflow_port=airflow_port,
        jid_port=jid_port,
        backend=args.backend,
        parallelism=4,
        allowed_config_roots=[str(state_dir)],
        extra_env={"LUTE_BENCH_SCALE_STEPS": str(args.steps),
                   "LUTE_BENCH_SCALE_TARGET_FILE": str(target_file),
                   "LUTE_WORKFLOW_DEFS_DIR": str(state_dir / "defs")},
        jid_env=jid_env,
        timeout=900.0,  # start-up is not measured; a loaded machine is slow
    )
    print(f"starting the stack in {state_dir} (Airflow :{airflow_port}, JID :{jid_port})",
          flush=True)
    t0 = time.monotonic()
    stack.start()
    print(f"stack healthy after {time.monotonic() - t0:.1f} s", flush=True)
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
        sensors = run_sensors(client, sampler, args, target_file,
                              stack.log_dir / "triggerer.log")
        print(json.dumps(sensors), flush=True)
        if slurm:
            steps = run_slurm_steps(client, sampler, args, config, stack)
        else:
            steps = run_local_steps(client, sampler, args, config)
        print(json.dumps(steps), flush=True)
        sampler.stopped.set()
        sampler.join(timeout=10)
        ratio = None
        if sensors["waiting"] and steps["waiting"] and sensors["waiting"]["triggerer_cpu_pct"]:
            ratio = round(steps["waiting"]["triggerer_cpu_pct"]
                          / sensors["waiting"]["triggerer_cpu_pct"], 2)
        print(json.dumps({"backend": args.backend, "steps": args.steps, "seconds": args.seconds,
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
