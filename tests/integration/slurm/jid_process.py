"""A real ``jid-service serve`` process with the slurm backend, on a loopback port.

The process runs this checkout's CLI under uvicorn with settings from a tmp
YAML file; tests talk to it over HTTP, kill it (-9) and start it again on the
same store.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jid_service.auth import issue_token
from tests.integration.slurm.cluster import LAUNCHER, job_env

PORT_RANGE = range(32000, 33000)  # this suite's loopback ports
EXPERIMENT = "tst00001"


def free_port() -> int:
    """A port of this suite's range that nothing listens on now."""
    start = PORT_RANGE.start + (os.getpid() * 7) % len(PORT_RANGE)
    for i in range(len(PORT_RANGE)):
        port = PORT_RANGE.start + (start - PORT_RANGE.start + i) % len(PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 32000-32999")


class JidProcess:
    """Start, stop and kill a JID daemon; settings and store live in ``directory``."""

    def __init__(self, directory: Path, config_roots: list[Path], poll_interval: float = 0.5,
                 extra_settings: dict[str, Any] | None = None,
                 path_prefix: Path | None = None) -> None:
        self.directory = directory
        self.path_prefix = path_prefix
        directory.mkdir(parents=True, exist_ok=True)
        self.secret = secrets.token_urlsafe(32)
        self.settings_file = directory / "jid.yaml"
        settings = {
            "backend": "slurm",
            "db_url": f"sqlite:///{directory / 'jid.db'}",
            "auth_secret": self.secret,
            "allowed_config_roots": [str(p) for p in config_roots],
            "launcher": str(LAUNCHER),
            "state_dir": str(directory / "state"),
            "log_dir": str(directory / "logs"),
            "poll_interval": poll_interval,
            "kill_wait_seconds": 15,
        }
        settings.update(extra_settings or {})
        self.settings_file.write_text(yaml.safe_dump(settings))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.token = issue_token(self.secret, "tester", [EXPERIMENT], 3600)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    @property
    def log_file(self) -> Path:
        return self.directory / f"serve-{self.starts}.log"

    def start(self, timeout: float = 60.0) -> None:
        """Launch the daemon and wait until it answers /healthz."""
        self.starts += 1
        env = job_env()
        env["JID_SETTINGS_FILE"] = str(self.settings_file)
        if self.path_prefix is not None:
            env["PATH"] = f"{self.path_prefix}{os.pathsep}{env['PATH']}"
        with self.log_file.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jid_service.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--settings", str(self.settings_file)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"jid-service exited ({self.proc.returncode}):\n"
                            f"{self.log_file.read_text()[-3000:]}", pytrace=False)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=15).status_code in (200, 503):
                    return
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"jid-service did not answer within {timeout:g} s:\n"
                            f"{self.log_file.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the daemon (no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM the daemon; SIGKILL it if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    # ---------------------------------------------------------------- API ---
    def metrics(self) -> str:
        """The Prometheus text of /metrics."""
        response = httpx.get(f"{self.base}/metrics", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.text

    def post(self, path: str, body: Any, timeout: float = 90.0) -> httpx.Response:
        return httpx.post(f"{self.base}/jid/ws{path}", json=body, headers=self.headers,
                          timeout=timeout)


def control_document(taskname: str, config: Path, *slurm_args: str,
                     key: str | None = None, root: str = "root-1") -> dict[str, Any]:
    """An ARP control document asking for ``taskname`` with ``config``."""
    job_key = key or uuid.uuid4().hex
    params = " ".join(["--taskname", taskname, "--config", str(config),
                       "--partition=debug", "--ntasks=1", *slurm_args])
    return {
        "_id": job_key,
        "arp_root_job_id": root,
        "experiment": EXPERIMENT,
        "run_num": 7,
        "user": "tester",
        "status": "",
        "tool_id": "",
        "def_id": f"def-{job_key}",
        "def": {
            "_id": f"def-{job_key}",
            "name": taskname,
            "executable": str(LAUNCHER),
            "trigger": "MANUAL",
            "location": "S3DF",
            "parameters": params,
            "run_as_user": "tester",
        },
    }


def value(response: httpx.Response) -> Any:
    """The envelope's value of a successful answer (fails the test otherwise)."""
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    body = response.json()
    assert body["success"] is True, body
    return body["value"]


def wait_statuses(jid: JidProcess, docs: list[dict[str, Any]], timeout: float = 120.0,
                  tolerate_503: bool = False) -> dict[str, dict[str, Any]]:
    """Poll ``job_statuses`` (ARP's loop) until every job has ended; by ``_id``."""
    deadline = time.monotonic() + timeout
    while True:
        response = jid.post("/job_statuses", docs)
        if response.status_code == 503 and tolerate_503:
            assert "Retry-After" in response.headers
        else:
            current = {d["_id"]: d for d in value(response)}
            if all(d["status"] in ("DONE", "FAILED", "EXITED") for d in current.values()):
                return current
        if time.monotonic() > deadline:
            pytest.fail(f"jobs did not end within {timeout:g} s", pytrace=False)
        time.sleep(0.5)
