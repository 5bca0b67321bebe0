"""A real ``jid-service serve`` process (uvicorn on loopback) for the JID's integration tests."""

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

REPO = Path(__file__).resolve().parents[3]
PORT_RANGE = range(31000, 32000)  # this suite's loopback ports
EXPERIMENT = "exp00001"
FINAL = ("DONE", "FAILED", "EXITED")


def jid_service_argv() -> list[str]:
    """The installed console script next to this Python (the one users run)."""
    script = Path(sys.executable).parent / "jid-service"
    if not script.exists():
        pytest.fail(f"the jid-service console script is not installed next to {sys.executable}")
    return [str(script)]


def free_port() -> int:
    """A port of this suite's range that nothing listens on now."""
    offset = (os.getpid() * 13) % len(PORT_RANGE)
    for i in range(len(PORT_RANGE)):
        port = PORT_RANGE.start + (offset + i) % len(PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 31000-31999")


def write_task_config(directory: Path, sleep_seconds: float = 2.0) -> Path:
    """The repository's config/test.yaml, with its work dir and Sleep time adapted."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "work").mkdir(exist_ok=True)
    text = (REPO / "config" / "test.yaml").read_text()
    docs = list(yaml.safe_load_all(text))
    header, tasks = docs[0], docs[1]
    header["work_dir"] = str(directory / "work")
    tasks["Sleep"] = {"seconds": sleep_seconds, "print_interval": 0.5}
    path = directory / "test.yaml"
    path.write_text(yaml.safe_dump(header) + "...\n---\n" + yaml.safe_dump(tasks) + "...\n")
    return path


def control_document(task: str, config: Path, experiment: str = EXPERIMENT,
                     root: str = "root-1") -> dict[str, Any]:
    """A control document as LUTE's JIDSlurmOperator builds it."""
    return {
        "_id": str(uuid.uuid4()),
        "arp_root_job_id": root,
        "experiment": experiment,
        "run_num": "7",
        "user": "tester",
        "status": "",
        "tool_id": "",
        "def_id": str(uuid.uuid4()),
        "def": {
            "_id": str(uuid.uuid4()),
            "name": task,
            "executable": str(REPO / "launch_scripts" / "submit_slurm.sh"),
            "trigger": "MANUAL",
            "location": "S3DF",
            "parameters": f"--taskname {task} --config {config} --partition=debug --ntasks=1",
            "run_as_user": "tester",
        },
    }


class ServeProcess:
    """Start, stop and kill a JID daemon whose settings, store and state live in ``directory``."""

    def __init__(self, directory: Path, config_roots: list[Path],
                 extra_settings: dict[str, Any] | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.secret = secrets.token_urlsafe(48)
        self.settings_file = directory / "jid.yaml"
        settings: dict[str, Any] = {
            "backend": "local",
            "db_url": f"sqlite:///{directory / 'jid.db'}",
            "auth_secret": self.secret,
            "allowed_config_roots": [str(p) for p in config_roots],
            "state_dir": str(directory / "state"),
            "poll_interval": 0.2,
            "local_max_parallel": 4,
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

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JID_")}
        env["JID_SETTINGS_FILE"] = str(self.settings_file)
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Launch ``jid-service serve`` and wait until /healthz answers 200."""
        self.starts += 1
        with self.log_file.open("wb") as out:
            self.proc = subprocess.Popen(
                [*jid_service_argv(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"jid-service exited ({self.proc.returncode}):\n"
                            f"{self.log_file.read_text()[-3000:]}", pytrace=False)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=5).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"jid-service did not answer within {timeout:g} s:\n"
                            f"{self.log_file.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the daemon: no clean shutdown at all."""
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

    def post(self, path: str, body: Any, timeout: float = 30.0) -> httpx.Response:
        """POST under /jid/ws with the token."""
        return httpx.post(f"{self.base}/jid/ws{path}", json=body, headers=self.headers,
                          timeout=timeout)

    def get(self, path: str, params: dict[str, str], timeout: float = 30.0) -> httpx.Response:
        """GET under /jid/ws with the token."""
        return httpx.get(f"{self.base}/jid/ws{path}", params=params, headers=self.headers,
                         timeout=timeout)

    def value(self, response: httpx.Response) -> Any:
        """The envelope's value of a 200 answer."""
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True, body
        return body["value"]

    def wait_final(self, jobs: list[dict[str, Any]], timeout: float = 120) -> list[dict[str, Any]]:
        """Long-poll /wait until every job ended."""
        deadline = time.monotonic() + timeout
        while any(j["status"] not in FINAL for j in jobs):
            assert time.monotonic() < deadline, f"jobs did not end: {jobs}"
            jobs = self.value(self.post("/wait", {"jobs": jobs, "timeout": 10}, timeout=20))
        return jobs
