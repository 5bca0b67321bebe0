"""Restarting one component of a running dev stack (``lute-dev-stack restart NAME``).

When the stack starts a component it also keeps how it started it (argv,
environment, working directory) in ``<state dir>/spawn/<name>.json``, mode
0600 like the stack's other secrets (the environment holds the JID's secret
and token). A restart stops exactly that component's recorded process, starts
it again the same way, with the same log and pid files, and waits until it
is ready: the JID answers ``/healthz``; the api-server answers Airflow's
health endpoint; the scheduler, triggerer and dag-processor have sent a
heartbeat since the restart began and Airflow reports them healthy. Other components keep running.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from lute.launch.processes import ProcessRecord, log_tail, read_records, spawn, stop_records
from lute.launch.readiness import StackError
from lute.suggestions import did_you_mean

HEARTBEATS = {
    "scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "triggerer": ("triggerer", "latest_triggerer_heartbeat"),
    "dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
}
"""Component (by name prefix) -> its entry of Airflow's health answer and heartbeat field."""


@dataclass(frozen=True)
class SpawnSpec:
    """How a component was started, and where its log and pid files are."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_dir: str
    pid_dir: str


def spec_dir(state_dir: Path) -> Path:
    """Where a stack keeps how it started each component."""
    return state_dir / "spawn"


def write_spec(state_dir: Path, name: str, spec: SpawnSpec) -> None:
    """Keep how component ``name`` was started (owner-only: its environment holds secrets)."""
    directory = spec_dir(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(spec), fh)
    tmp.replace(path)


def read_spec(state_dir: Path, name: str) -> SpawnSpec:
    """How component ``name`` was started; StackError naming the known components if unknown."""
    path = spec_dir(state_dir) / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        known = sorted(p.stem for p in spec_dir(state_dir).glob("*.json"))
        if not known:
            raise StackError(
                f"no restartable components recorded in {state_dir} "
                "(is a stack running there, started by this version?)"
            ) from None
        raise StackError(
            f"no component {name!r} in the stack at {state_dir}"
            + (did_you_mean(name, known) or f"; components: {', '.join(known)}")
        ) from None
    return SpawnSpec(**data)


def _stack_urls(state_dir: Path) -> tuple[str, str]:
    try:
        state = json.loads((state_dir / "stack.json").read_text())
    except FileNotFoundError:
        raise StackError(f"no running stack recorded in {state_dir} (no stack.json)") from None
    return state["airflow_url"], state["jid_url"]


def _ready(client: httpx.Client, name: str, since: dt.datetime, urls: tuple[str, str]) -> str:
    """Empty when ``name`` is ready, else what it is still waiting for."""
    airflow_url, jid_url = urls
    if name == "jid":
        status = client.get(f"{jid_url}/healthz").status_code
        return "" if status == 200 else f"JID /healthz answered {status}"
    answer = client.get(f"{airflow_url}/api/v2/monitor/health")
    if answer.status_code != 200:
        return f"Airflow health answered {answer.status_code}"
    beat = next((v for k, v in HEARTBEATS.items() if name.startswith(k)), None)
    if beat is None:  # the api-server: it answered
        return ""
    entry, field = beat
    health = answer.json().get(entry) or {}
    stamp = health.get(field)
    if not stamp or dt.datetime.fromisoformat(stamp) < since:
        return f"no {entry} heartbeat since the restart (latest: {stamp})"
    # the newest heartbeat is the new process's; healthy once Airflow counts it alive
    return "" if health.get("status") == "healthy" else f"{entry} {health.get('status')}"


def _wait_ready(
    record: ProcessRecord,
    proc: subprocess.Popen[bytes],
    since: dt.datetime,
    urls: tuple[str, str],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    last = "not started"
    with httpx.Client(timeout=5.0) as client:
        while True:
            if proc.poll() is not None:
                raise StackError(
                    f"{record.name} exited after the restart; last lines of "
                    f"{record.log_path}:\n{log_tail(record.log_path)}"
                )
            try:
                last = _ready(client, record.name, since, urls)
            except (httpx.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if not last:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{record.name} not ready {timeout:.0f} s after the restart ({last}); "
                    f"last lines of {record.log_path}:\n{log_tail(record.log_path, 10)}"
                )
            time.sleep(0.2)


def spawn_restartable(
    state_dir: Path,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    log_dir: Path,
    pid_dir: Path,
) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
    """Start component ``name`` (cwd: the state dir) and keep how, for a restart."""
    spec = SpawnSpec(list(argv), dict(env), str(state_dir), str(log_dir), str(pid_dir))
    started = _spawn(spec, name)
    write_spec(state_dir, name, spec)
    return started


def _spawn(spec: SpawnSpec, name: str) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
    return spawn(
        name,
        spec.argv,
        env=spec.env,
        cwd=Path(spec.cwd),
        log_dir=Path(spec.log_dir),
        pid_dir=Path(spec.pid_dir),
    )


def restart_component(
    state_dir: Path,
    name: str,
    *,
    timeout: float = 90.0,
    reap: Callable[[], object] | None = None,
) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
    """Stop component ``name`` (if it runs), start it as before, wait until it is ready.

    ``reap`` collects exited children of a caller that started the stack
    itself (:meth:`lute.launch.stack.Stack.restart`).
    """
    spec = read_spec(state_dir, name)
    urls = _stack_urls(state_dir)
    pid_dir = Path(spec.pid_dir)
    running = [r for r in read_records(pid_dir) if r.name == name]
    stop_records(running, pid_dir, timeout=min(timeout, 40.0), reap=reap)
    # after the stop: a heartbeat of the old process must not count as the new one's
    since = dt.datetime.now(dt.UTC)
    record, proc = _spawn(spec, name)
    _wait_ready(record, proc, since, urls, timeout)
    return record, proc
