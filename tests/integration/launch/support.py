"""Helpers of the launcher integration tests: run the launcher, write configs, query the stack."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from lute.launch.ports import free_port_block
from lute.launch.stack import REPO_ROOT, Stack

LAUNCHER = REPO_ROOT / "launch_scripts" / "launch_airflow.py"
# variables of an ARP launch that must not leak from the developer's shell
ARP_VARS = ("Authorization", "EXPERIMENT", "RUN_NUM", "ARP_JOB_ID", "ARP_LOCATION",
            "JID_UPDATE_COUNTERS", "LUTE_LAUNCH_CONFIG", "LUTE_AIRFLOW_URL",
            "LUTE_AIRFLOW_USERNAME", "LUTE_AIRFLOW_PASSWORD", "LUTE_AIRFLOW_TOKEN",
            "LUTE_JID_URL", "LUTE_JID_TOKEN")


def stack_ports() -> tuple[int, int]:
    """Free (Airflow, JID) ports for a test stack: Airflow takes three in a row."""
    airflow_port = free_port_block(3)
    return airflow_port, free_port_block(1, exclude=range(airflow_port, airflow_port + 3))


def unused_port() -> int:
    """A loopback port nothing listens on: where a server is down."""
    return free_port_block(1)


@dataclass
class Result:
    """A finished launcher run."""

    returncode: int
    stdout: str
    stderr: str

    def lines(self, prefix: str) -> list[str]:
        """Output lines that start with ``prefix``."""
        return [ln for ln in self.stdout.splitlines() if ln.startswith(prefix)]


def launcher_env(stack: Stack, defs_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a launcher run against ``stack`` (nothing from an ARP)."""
    env = {k: v for k, v in os.environ.items() if k not in ARP_VARS}
    env.update(stack.launcher_env())
    env["LUTE_WORKFLOW_DEFS_DIR"] = str(defs_dir)
    env.update(extra)
    return env


def run_launcher(env: dict[str, str], *args: str, timeout: float = 240) -> Result:
    """Run ``launch_airflow.py`` as a user would, to the end."""
    proc = subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_test_config(directory: Path, **sections: str) -> Path:
    """A copy of config/test.yaml in ``directory`` (its work dir created), plus sections."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory.parent / "work_dirs" / "test").mkdir(parents=True, exist_ok=True)
    text = (REPO_ROOT / "config" / "test.yaml").read_text()
    if sections:
        body = "".join(f"{name}:\n{params}\n" for name, params in sections.items())
        text = text.rstrip()
        text = text[: -len("...")] if text.endswith("...") else text + "\n"
        text = text + body + "...\n"
    path = directory / "test.yaml"
    path.write_text(text)
    return path


def jid_jobs(stack: Stack, **query: str) -> list[dict]:
    """The JID's jobs matching ``query`` (GET /jid/ws/jobs)."""
    resp = httpx.get(f"{stack.jid_url}/jid/ws/jobs", params=query,
                     headers={"Authorization": f"Bearer {stack.jid_token}"}, timeout=10)
    resp.raise_for_status()
    return resp.json()["value"]


def airflow_request(stack: Stack, method: str, path: str, body: dict | None = None) -> dict:
    """An authenticated call of the stack's Airflow REST API; its JSON body ({} if none)."""
    tok = httpx.post(f"{stack.airflow_url}/auth/token",
                     json={"username": stack.username, "password": stack.password}, timeout=10)
    tok.raise_for_status()
    resp = httpx.request(method, f"{stack.airflow_url}{path}", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {tok.json()['access_token']}"})
    resp.raise_for_status()
    return resp.json() if resp.content else {}


def airflow_get(stack: Stack, path: str) -> dict:
    """An authenticated GET on the stack's Airflow REST API."""
    return airflow_request(stack, "GET", path)
