"""A real ``jid-service serve`` process on a free loopback port, for integration tests.

Settings, store and logs live in one directory; tests talk to the daemon over
HTTP, stop it, kill it with SIGKILL and start it again on the same store.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
import yaml

from jid_service.auth import issue_token
from lute.launch.ports import free_port_block

FINAL = ("DONE", "FAILED", "EXITED")


def jid_service_argv() -> list[str]:
    """The installed console script next to this Python (the one users run)."""
    script = Path(sys.executable).parent / "jid-service"
    if not script.exists():
        pytest.fail(f"the jid-service console script is not installed next to {sys.executable}")
    return [str(script)]


class JidServer:
    """Start, stop and kill one JID daemon whose settings, store and state live in ``directory``.

    ``settings`` are written over the defaults (local backend, SQLite store in
    ``directory``, a fresh secret); ``experiments``, ``user`` and ``admin``
    shape the token in ``headers``; ``env`` is the daemon's environment
    (default: this process's, without ``JID_*`` variables); ``healthy`` lists
    the ``/healthz`` status codes that count as "answering".
    """

    def __init__(
        self,
        directory: Path,
        config_roots: list[Path],
        settings: Mapping[str, Any] | None = None,
        *,
        experiments: list[str] | str = "*",
        user: str = "tester",
        admin: bool = False,
        env: Mapping[str, str] | None = None,
        healthy: Collection[int] = (200,),
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.secret = secrets.token_urlsafe(48)
        self.settings_file = directory / "jid.yaml"
        merged: dict[str, Any] = {
            "backend": "local",
            "db_url": f"sqlite:///{directory / 'jid.db'}",
            "auth_secret": self.secret,
            "allowed_config_roots": [str(p) for p in config_roots],
            "state_dir": str(directory / "state"),
            "poll_interval": 0.2,
            "local_max_parallel": 4,
        }
        merged.update(settings or {})
        self.settings_file.write_text(yaml.safe_dump(merged))
        self._env = dict(os.environ if env is None else env)
        self.healthy = tuple(healthy)
        self.port = free_port_block()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.token = issue_token(self.secret, user, experiments, 3600, admin=admin)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    @property
    def log_file(self) -> Path:
        """The current process's output (one file per start)."""
        return self.directory / f"serve-{self.starts}.log"

    def env(self) -> dict[str, str]:
        """The daemon's environment: settings from the file only."""
        env = {k: v for k, v in self._env.items() if not k.startswith("JID_")}
        env["JID_SETTINGS_FILE"] = str(self.settings_file)
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Launch ``jid-service serve`` and wait until ``/healthz`` answers."""
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
                if httpx.get(f"{self.base}/healthz", timeout=15).status_code in self.healthy:
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

    def __enter__(self) -> JidServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---------------------------------------------------------------- API ---
    def post(self, path: str, body: Any, timeout: float = 90.0) -> httpx.Response:
        """POST under /jid/ws with the token."""
        return httpx.post(f"{self.base}/jid/ws{path}", json=body, headers=self.headers,
                          timeout=timeout)

    def get(self, path: str, params: dict[str, str], timeout: float = 30.0) -> httpx.Response:
        """GET under /jid/ws with the token."""
        return httpx.get(f"{self.base}/jid/ws{path}", params=params, headers=self.headers,
                         timeout=timeout)

    def metrics(self) -> str:
        """The Prometheus text of /metrics."""
        response = httpx.get(f"{self.base}/metrics", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.text

    @staticmethod
    def value(response: httpx.Response) -> Any:
        """The envelope's value of a successful answer (fails the test otherwise)."""
        assert response.status_code == 200, f"{response.status_code}: {response.text}"
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
