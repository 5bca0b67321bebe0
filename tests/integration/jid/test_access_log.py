"""A real ``jid-service serve --access-log`` logs request lines without their query string."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.jid_server import jid_service_argv

from .serve_process import ServeProcess, write_task_config

pytestmark = pytest.mark.timeout(120)

LEAKED = "leaked-token-value-3f9a"


def test_access_log_has_paths_without_query_strings(tmp_path: Path) -> None:
    write_task_config(tmp_path / "cfg")
    server = ServeProcess(tmp_path / "jid", [tmp_path / "cfg"])
    log_file = tmp_path / "serve.log"
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [*jid_service_argv(), "serve", "--host", "127.0.0.1", "--port", str(server.port),
             "--access-log"],
            stdout=out, stderr=subprocess.STDOUT, env=server.env(), start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_file.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.1)
        r = httpx.get(f"{server.base}/jid/ws/jobs", params={"token": LEAKED},
                      headers=server.headers, timeout=10)
        assert r.status_code == 422  # an unknown query parameter
        r = httpx.get(f"{server.base}/jid/ws/jobs",
                      params={"experiment": "exp00001", "access_token": LEAKED}, timeout=10)
        assert r.status_code == 401
        r = httpx.get(f"{server.base}/jid/ws/jobs", headers=server.headers, timeout=10)
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log_file.read_text()
    assert LEAKED not in text
    lines = [line for line in text.splitlines() if "GET /jid/ws/jobs" in line]
    assert len(lines) == 3, text
    assert all('"GET /jid/ws/jobs HTTP/1.1"' in line and "?" not in line for line in lines), lines
    assert any("422" in line for line in lines) and any("401" in line for line in lines)
