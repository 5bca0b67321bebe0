"""Executor overhead and result-channel throughput, against in-run baselines.

1. Start-up overhead: median wall time of ``lute-run-task`` on a no-op Task
   (``Sleeper`` with ``seconds: 0``: config parsing, validation, DB record,
   Task process, result, DB update) minus the median of
   ``python -c "import lute"``. Target: <= 0.2 s. For information, the same
   difference in CPU seconds (user + system, the forked Task's included),
   which a loaded machine inflates far less than wall time, and the same
   no-op with the Task started in a new interpreter instead of forked. Also
   for information, the libraries' floor: ``python -c`` importing ``lute``,
   ``yaml`` and ``pydantic`` and building one pydantic model (what any run
   pays, since configs are YAML and LUTE's parameter models are pydantic),
   minus ``import lute``; and the no-op minus that floor (the project's own
   share of the overhead).
2. IPC throughput: a separate process hands a 100 MB result to this one
   exactly as a Task process does (``send_result``: large payloads are
   written once to their payload file and handed over by path, then checked),
   compared with writing the same bytes to a local file in the same directory.
   For information, the same bytes streamed through the socket.
   Target ratio (IPC throughput / file-write throughput) >= 0.5.
3. For information: the whole ``SocketTester`` managed task with a 100 MB
   result, minus the no-op run; and the log relay latency (a ``Sleeper`` line's
   own wall-clock stamp against when it reaches ``lute-run-task``'s stdout).
4. The same no-op as a job of the JID's ``local`` backend, from submission to
   its recorded end, started by the fork server (the default) against two new
   interpreters (``local_fork_server: false``), interleaved; and the fork
   server's job minus ``python -c "import lute"`` (the step's own overhead).

Usage: ``python benchmarks/executor_overhead.py [--runs N] [--mbytes M]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

from lute.execution.ipc import Channel, handed_over_payload, payload_path, socket_pair

TARGET_S = 0.2
FLOOR = "import lute, yaml, pydantic\nclass M(pydantic.BaseModel):\n    x: int = 0\n"
"""The libraries every run needs: the YAML parser and one pydantic model built."""

# the Task side of the channel, exactly as lute.execution.child sends a result
SENDER = textwrap.dedent(
    """
    import socket, sys
    from lute.execution.ipc import Channel, send_result
    channel = Channel(socket.socket(fileno=int(sys.argv[1])))
    data = bytearray(int(sys.argv[2]))
    data[::4096] = b"x" * len(data[::4096])
    channel.send({"type": "ready"})
    channel.receive()  # go
    if sys.argv[4] == "stream":
        channel.send({"type": "result", "payload_name": "bench.bin"}, blob=data)
    else:
        send_result(channel, {"type": "result", "payload_name": "bench.bin"}, data, sys.argv[3])
    channel.close()
    """
)


def cpu_and_wall(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """User + system CPU seconds of one run (the forked Task's too, reaped by it), and its wall."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(argv, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall time of one command that must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def write_config(folder: Path, mbytes: int) -> Path:
    """A config with a no-op Sleep and a TestSocket of ``mbytes`` MB."""
    floats = mbytes * 1_000_000 // 8
    tasks = {"Sleep": {"seconds": 0}, "TestSocket": {"array_size": floats, "num_arrays": 1}}
    (folder / "ticks").mkdir(parents=True, exist_ok=True)
    ticks = folder / "ticks" / "ticks.yaml"
    ticks.write_text(
        yaml.safe_dump_all(
            [
                {"title": "ticks", "work_dir": "../work"},
                {"Sleep": {"seconds": 3, "print_interval": 0.1}},
            ],
            explicit_start=True,
        )
    )
    header = {"title": "benchmark", "task_timeout": 600, "work_dir": "work"}
    (folder / "work").mkdir(parents=True, exist_ok=True)
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump_all([header, tasks], explicit_start=True))
    return path


def relay_latencies(config: Path, env: dict[str, str]) -> list[float]:
    """Seconds from a Sleep tick's own timestamp to its arrival on lute-run-task's stdout."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lute.run_task", "-c", str(config), "-t", "Sleeper"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    latencies = []
    for line in proc.stdout:
        arrived = time.time()
        match = re.search(r"\(wall ([0-9.]+)\)", line)
        if match:
            latencies.append(arrived - float(match.group(1)))
    assert proc.wait(timeout=60) == 0
    return latencies


def ipc_seconds(size: int, work_dir: Path, mode: str = "result") -> float:
    """Time to move ``size`` bytes from another process into a file in ``work_dir``.

    ``result``: the Executor's mechanism (large payloads handed over by path);
    ``stream``: the same bytes streamed through the socket into the file.
    """
    parent, child = socket_pair()
    prefix = work_dir / "lute_payloads" / "run000001_Bench"
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(child.fileno()), str(size), str(prefix), mode],
        pass_fds=(child.fileno(),),
    )
    child.close()
    channel = Channel(parent)
    assert channel.receive().message["type"] == "ready"
    start = time.perf_counter()
    channel.send({"type": "go"})
    frame = channel.receive(blob_sink=lambda message, size: payload_path(prefix, "bench.bin"))
    if "payload_file" in frame.message:
        path, received = handed_over_payload(frame.message, prefix)
    else:
        path, received = frame.blob_path, frame.blob_bytes
    elapsed = time.perf_counter() - start
    assert received == size and path is not None and path.stat().st_size == size
    proc.wait(timeout=60)
    parent.close()
    path.unlink()
    return elapsed


def file_seconds(size: int, work_dir: Path) -> float:
    """Time to write ``size`` bytes (already in memory) to a local file."""
    data = bytearray(size)
    data[::4096] = b"x" * len(data[::4096])
    target = work_dir / "plain.bin"
    start = time.perf_counter()
    with open(target, "wb") as fh:
        fh.write(data)
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


async def local_job_seconds(backend: object, config: Path, key: str) -> float:
    """Submission to the recorded end of a no-op ``Sleeper`` job of the local backend."""
    from jid_service.backends.base import SubmitSpec

    start = time.time()
    sub = await backend.submit(SubmitSpec(  # type: ignore[attr-defined]
        job_key=key, experiment="bench", run="1", user="bench", taskname="Sleeper",
        config_path=config))
    exit_file = backend.root / "jobs" / sub.tool_id / "exit"  # type: ignore[attr-defined]
    while not exit_file.exists():
        await asyncio.sleep(0.005)
    outcome = json.loads(exit_file.read_text())
    assert outcome["exit_code"] == 0, Path(sub.log_path).read_text()
    return outcome["ended_at"] - start


async def local_backend_jobs(folder: Path, config: Path, runs: int) -> tuple[list, list]:
    """Interleaved no-op jobs through the fork server and through new interpreters."""
    from jid_service.backends.local import RUN_TASK_PREFIX, LocalBackend

    forked = LocalBackend(folder / "state-fork", RUN_TASK_PREFIX, fork_server=True)
    plain = LocalBackend(folder / "state-plain", RUN_TASK_PREFIX, fork_server=False)
    with_server, without = [], []
    try:
        await local_job_seconds(forked, config, "warm-fork")  # the server's own start
        await local_job_seconds(plain, config, "warm-plain")
        for i in range(runs):
            with_server.append(await local_job_seconds(forked, config, f"fork-{i}"))
            without.append(await local_job_seconds(plain, config, f"plain-{i}"))
    finally:
        await forked.aclose()
        await plain.aclose()
    return with_server, without


def main() -> int:
    """Run the measurements and print them against their baselines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="start-up repetitions")
    parser.add_argument("--mbytes", type=int, default=100, help="result size in MB")
    args = parser.parse_args()
    env = dict(os.environ, EXPERIMENT="bench", RUN_NUM="1")
    env = {k: v for k, v in env.items() if not k.startswith("LUTE_")}
    size = args.mbytes * 1_000_000
    with tempfile.TemporaryDirectory(prefix="lute-bench-") as tmp:
        folder = Path(tmp)
        config = write_config(folder, args.mbytes)
        work = folder / "work"
        baseline, noop, spawned = [], [], []
        baseline_cpu, noop_cpu, floor = [], [], []
        run_task = [sys.executable, "-m", "lute.run_task", "-c", str(config)]
        spawn_env = dict(env, LUTE_TASK_PROCESS="spawn")
        timed([sys.executable, "-c", "import lute"], env)  # warm the page cache
        timed([*run_task, "-t", "Sleeper"], env)
        for _ in range(args.runs):  # interleaved so drift hits all alike
            cpu, wall = cpu_and_wall([sys.executable, "-c", "import lute"], env)
            baseline.append(wall)
            baseline_cpu.append(cpu)
            cpu, wall = cpu_and_wall([*run_task, "-t", "Sleeper"], env)
            noop.append(wall)
            noop_cpu.append(cpu)
            spawned.append(timed([*run_task, "-t", "Sleeper"], spawn_env))
            floor.append(timed([sys.executable, "-c", FLOOR], env))
        base_med, noop_med = statistics.median(baseline), statistics.median(noop)
        floor_med = statistics.median(floor)
        spawn_med = statistics.median(spawned)
        overhead = noop_med - base_med
        print(
            f"start-up: median lute-run-task no-op {noop_med:.3f} s, "
            f"median python -c 'import lute' {base_med:.3f} s"
        )
        print(
            f"  overhead (difference) = {overhead:.3f} s  (target <= {TARGET_S:.3f} s: "
            f"{'met' if overhead <= TARGET_S else 'NOT met'})"
        )
        # CPU time hardly grows with the machine's load, wall time does
        cpu_overhead = statistics.median(noop_cpu) - statistics.median(baseline_cpu)
        print(
            f"info: CPU (user + system) of the no-op: median {statistics.median(noop_cpu):.3f} s,"
            f" of 'import lute' {statistics.median(baseline_cpu):.3f} s, overhead "
            f"{cpu_overhead:.3f} s; load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"info: the same no-op with the Task in a new interpreter (LUTE_TASK_PROCESS=spawn):"
            f" median {spawn_med:.3f} s, overhead {spawn_med - base_med:.3f} s"
        )
        print(
            f"info: libraries' floor (yaml + pydantic + one model): median {floor_med:.3f} s,"
            f" {floor_med - base_med:.3f} s more than 'import lute'; the no-op's own share"
            f" beyond it {noop_med - floor_med:.3f} s"
        )

        forked, plain_jobs = asyncio.run(local_backend_jobs(folder, config, args.runs))
        fork_med, plain_med_job = statistics.median(forked), statistics.median(plain_jobs)
        print(
            f"local backend no-op job, submission to end: fork server median {fork_med:.3f} s, "
            f"new interpreters median {plain_med_job:.3f} s, ratio {fork_med / plain_med_job:.2f}"
        )
        job_overhead = fork_med - base_med
        print(
            f"  fork server job minus 'import lute' = {job_overhead:.3f} s  "
            f"(target <= {TARGET_S:.3f} s: {'met' if job_overhead <= TARGET_S else 'NOT met'})"
        )

        ipc, plain, stream = [], [], []
        for _ in range(5):
            plain.append(file_seconds(size, work))
            ipc.append(ipc_seconds(size, work))
            stream.append(ipc_seconds(size, work, "stream"))
        ipc_med, plain_med = statistics.median(ipc), statistics.median(plain)
        stream_med = statistics.median(stream)
        ratio = plain_med / ipc_med
        print(
            f"IPC: {args.mbytes} MB result from the Task process into its payload file: median "
            f"{ipc_med:.3f} s ({size / ipc_med / 1e6:.0f} MB/s); plain file write: median "
            f"{plain_med:.3f} s ({size / plain_med / 1e6:.0f} MB/s)"
        )
        print(
            f"  throughput ratio IPC / file write = {ratio:.2f}  (target >= 0.50: "
            f"{'met' if ratio >= 0.5 else 'NOT met'})"
        )
        print(
            f"info: the same bytes streamed through the socket into the file: median "
            f"{stream_med:.3f} s, ratio {plain_med / stream_med:.2f}"
        )

        socket_runs = [timed([*run_task, "-t", "SocketTester"], env) for _ in range(3)]
        sock_med = statistics.median(socket_runs)
        print(
            f"info: SocketTester managed task with a {args.mbytes} MB result: median "
            f"{sock_med:.3f} s, {sock_med - noop_med:.3f} s more than the no-op "
            "(includes generating and hashing the data in the Task)"
        )
        lat = relay_latencies(folder / "ticks" / "ticks.yaml", env)
        print(
            f"info: log relay latency over {len(lat)} lines: median "
            f"{statistics.median(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms"
        )
    return 0 if overhead <= TARGET_S and ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
