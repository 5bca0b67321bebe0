"""Deferrable against blocking waits: 12 managed tasks of 20 s in parallel, Airflow parallelism 4.

Starts a private dev stack (Airflow 3 api-server, scheduler, dag-processor and
triggerer on SQLite, plus a JID with the ``local`` backend allowed to run 12
jobs at once) on loopback ports, then runs ``lute_bench_parallel`` (12
``Sleeper`` steps in parallel) twice in the same stack: once with the steps
deferring to the triggerer (``jid_deferrable: true``), once holding a worker
slot while they wait (``jid_deferrable: false``), and a third time with
every step started in the triggerer (``lute_bench_parallel_triggerer``:
submission included, no worker slot until the job ends). With 4 worker slots
the blocking run needs three waves of 20 s; the deferrable runs need one.
The baselines, in the same stack: 12 of Airflow's own ``DateTimeSensorAsync``,
each waiting the step's length from when it starts (as a step's job starts
once the step has submitted it) and ending from its trigger:
``lute_bench_parallel_sensors`` started in the triggerer, the baseline of the
steps started there, and ``lute_bench_parallel_worker_sensors`` started in a
worker and deferring from it, the baseline of the deferrable steps. Each is
what Airflow alone needs to start, wait out and end 12 such tasks the same way.

Printed: each run's wall time (trigger to end of run), the ratio deferrable /
blocking (target <= 0.4) and to one step's length (target <= 1.15), the
same for the sensors (Airflow's floor for that target) and each mode's wall
time over its baseline's, the largest number of worker slots held at once
(task instances in state ``running``, sampled every 0.25 s; deferred task
instances hold none) and the worker slot-seconds used (the integral of that
count over the run: what the waiting really costs).

The steps use the operator's defaults: a deferrable step first waits
``defer_after`` seconds in the worker (so short jobs never defer) unless
other steps of its run wait for a worker slot or the step's earlier jobs ran
long, and a job that ends ``DONE`` ends its task from the trigger. The
deferrable run goes first, so it is a first run: no earlier job to learn
from. ``--defer-after S`` sets the run's ``jid_defer_after`` for the
deferrable run to measure another value.

    .venv/bin/python benchmarks/deferral.py [--seconds 20] [--defer-after S] [--keep]
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lute.launch.airflow_api import AirflowClient
from lute.launch.ports import free_port_block
from lute.launch.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "lute_bench_parallel"
TRIGGERER_DAG_ID = "lute_bench_parallel_triggerer"
SENSORS_DAG_ID = "lute_bench_parallel_sensors"
WORKER_SENSORS_DAG_ID = "lute_bench_parallel_worker_sensors"
SENSOR_DAG_IDS = (SENSORS_DAG_ID, WORKER_SENSORS_DAG_ID)
BASELINE_OF = {"deferrable": "worker_sensors", "start_in_triggerer": "sensors"}
"""Each mode of the steps against the sensors started the same way."""



def write_config(directory: Path, seconds: float) -> Path:
    """A copy of config/test.yaml whose Sleep step lasts ``seconds``."""
    work = directory / "work"
    work.mkdir(parents=True, exist_ok=True)
    text = (REPO_ROOT / "config" / "test.yaml").read_text()
    text = re.sub(r"(?m)^work_dir:.*$", f'work_dir: "{work}"', text)
    text = re.sub(
        r"(?ms)^Sleep:\n(  .*\n)+",
        f"Sleep:\n  seconds: {seconds}\n  print_interval: 5\n",
        text,
    )
    path = directory / "bench.yaml"
    path.write_text(text)
    return path


def run_conf(config: Path, deferrable: bool, defer_after: float | None = None) -> dict:
    """The conf launch_airflow.py would send, plus the deferral switches."""
    conf = {
        "experiment": "bench",
        "run_id": "1",
        "ARP_ROOT_JOB_ID": f"bench-{'defer' if deferrable else 'block'}-{int(time.time())}",
        "ARP_LOCATION": "local",
        "user": getpass.getuser(),
        "lute_location": str(REPO_ROOT),
        "lute_params": {"config_file": str(config), "debug": False},
        "slurm_params": [],
        "jid_deferrable": deferrable,
    }
    if defer_after is not None:
        conf["jid_defer_after"] = defer_after
    return conf


def measure(
    client: AirflowClient, conf: dict, label: str, timeout: float, dag_id: str = DAG_ID
) -> dict:
    """Trigger one run and follow it; wall time and the most running task instances."""
    run_id = f"{label}-{int(time.time() * 1000)}"
    start = time.monotonic()
    client.trigger(dag_id, run_id, conf)
    max_running = 0
    max_deferred = 0
    slot_seconds = 0.0
    last_sample = time.monotonic()
    running = 0
    while True:
        tis = client.task_instances(dag_id, run_id)
        now = time.monotonic()
        # Worker slots held between two samples, counted at the earlier sample's level.
        slot_seconds += running * (now - last_sample)
        last_sample = now
        states = [ti.get("state") for ti in tis]
        running = states.count("running")
        max_running = max(max_running, running)
        max_deferred = max(max_deferred, states.count("deferred"))
        state = client.dag_run(dag_id, run_id)["state"]
        if state in ("success", "failed"):
            break
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{label} run did not finish in {timeout:.0f} s")
        time.sleep(0.25)
    wall = time.monotonic() - start
    return {
        "mode": label,
        "state": state,
        "wall_s": round(wall, 1),
        "max_worker_slots_held": max_running,
        "worker_slot_seconds": round(slot_seconds, 1),
        "max_deferred": max_deferred,
        "task_states": sorted(set(states)),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures (JSON last line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each step")
    parser.add_argument("--parallelism", type=int, default=4, help="Airflow worker slots")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    parser.add_argument(
        "--defer-after", type=float, default=None,
        help="the deferrable run's jid_defer_after (default: the operator's default)",
    )
    args = parser.parse_args(argv)

    state_dir = Path(tempfile.mkdtemp(prefix="lute-deferral-"))
    config = write_config(state_dir / "cfg", args.seconds)
    airflow_port = free_port_block(3)
    jid_port = free_port_block(1, exclude=set(range(airflow_port, airflow_port + 3)))
    stack = Stack(
        state_dir / "stack",
        airflow_port=airflow_port,
        jid_port=jid_port,
        backend="local",
        parallelism=args.parallelism,
        allowed_config_roots=[str(state_dir)],
        extra_env={"LUTE_WORKFLOW_DEFS_DIR": str(state_dir / "defs")},
        jid_env={"JID_LOCAL_MAX_PARALLEL": "12"},
        timeout=600.0,  # start-up is not measured; a loaded machine is slow
    )
    print(f"starting the stack in {state_dir} (Airflow :{airflow_port}, JID :{jid_port})")
    t0 = time.monotonic()
    stack.start()
    print(f"stack healthy after {time.monotonic() - t0:.1f} s")
    try:
        client = AirflowClient(
            stack.airflow_url, username=stack.username, password=stack.password, timeout=30.0
        )
        client.login()
        for dag_id in (DAG_ID, TRIGGERER_DAG_ID, *SENSOR_DAG_IDS):
            client.wait_for_dag(dag_id)
            client.unpause(dag_id)
        budget = 20 * args.seconds + 300
        # Warm-up, not measured: a dry run of each DAG exercises the worker, the
        # triggerer, the execution API and the JID once, so no mode pays first-use costs.
        for dag_id in (DAG_ID, TRIGGERER_DAG_ID):
            warm = measure(
                client, {**run_conf(config, True), "dryrun": True}, "warmup", budget, dag_id
            )
            print(f"warm-up dry run of {dag_id}: {warm['state']} in {warm['wall_s']} s")
        for dag_id in SENSOR_DAG_IDS:
            warm = measure(client, {"seconds": 1}, "warmup", budget, dag_id)
            print(f"warm-up of {dag_id}: {warm['state']} in {warm['wall_s']} s")
        # The deferrable run first: no earlier job of the step, so its choice
        # to defer at once comes from the queued steps, not the step's history.
        modes = [
            ("deferrable", DAG_ID, True),
            ("start_in_triggerer", TRIGGERER_DAG_ID, True),
            ("sensors", SENSORS_DAG_ID, True),
            ("worker_sensors", WORKER_SENSORS_DAG_ID, True),
            ("blocking", DAG_ID, False),
        ]
        results = {}
        for label, dag_id, deferrable in modes:
            conf = run_conf(config, deferrable, args.defer_after if deferrable else None)
            if dag_id in SENSOR_DAG_IDS:
                conf = {"seconds": args.seconds}
            result = measure(client, conf, label, budget, dag_id)
            print(json.dumps(result))
            results[label] = result
        blocking = results["blocking"]
        summary = {
            "steps": 12,
            "step_seconds": args.seconds,
            "parallelism": args.parallelism,
            "defer_after": "default" if args.defer_after is None else args.defer_after,
            "blocking_wall_s": blocking["wall_s"],
            "target_ratio": 0.4,
            "all_succeeded": all(r["state"] == "success" for r in results.values()),
        }
        for label in ("deferrable", "start_in_triggerer", "sensors", "worker_sensors"):
            summary[f"{label}_wall_s"] = results[label]["wall_s"]
            summary[f"ratio_{label}_over_blocking"] = round(
                results[label]["wall_s"] / blocking["wall_s"], 3
            )
            # the target: <= 1.15 (N waiting steps cost about one step's time);
            # the sensors' figure is how close Airflow itself comes
            summary[f"ratio_{label}_over_one_step"] = round(
                results[label]["wall_s"] / args.seconds, 3
            )
        for label, baseline in BASELINE_OF.items():
            summary[f"ratio_{label}_over_{baseline}"] = round(
                results[label]["wall_s"] / results[baseline]["wall_s"], 3
            )
        for label, result in results.items():
            summary[f"max_worker_slots_{label}"] = result["max_worker_slots_held"]
            summary[f"worker_slot_seconds_{label}"] = result["worker_slot_seconds"]
            summary[f"max_deferred_{label}"] = result["max_deferred"]
        print(json.dumps(summary))
        return 0 if summary["all_succeeded"] else 1
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
