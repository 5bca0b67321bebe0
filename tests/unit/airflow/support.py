"""Helpers shared by the Airflow-side tests: configs, run confs, an in-process JID."""

from __future__ import annotations

import contextlib
import getpass
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]


def write_test_config(directory: Path, sleep_seconds: float = 2.0) -> Path:
    """A copy of config/test.yaml with an absolute work dir under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    work = directory / "work"
    work.mkdir(exist_ok=True)
    text = (REPO_ROOT / "config" / "test.yaml").read_text()
    text = re.sub(r"(?m)^work_dir:.*$", f'work_dir: "{work}"', text)
    text = re.sub(
        r"(?ms)^Sleep:\n(  .*\n)+",
        f"Sleep:\n  seconds: {sleep_seconds}\n  print_interval: 0.5\n",
        text,
    )
    path = directory / "test.yaml"
    path.write_text(text)
    return path


def write_demo_config(directory: Path) -> Path:
    """A copy of config/demo.yaml with an absolute work dir under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    work = directory / "work"
    work.mkdir(exist_ok=True)
    text = (REPO_ROOT / "config" / "demo.yaml").read_text()
    text = re.sub(r"(?m)^work_dir:.*$", f'work_dir: "{work}"', text)
    path = directory / "demo.yaml"
    path.write_text(text)
    return path


def run_conf(config: Path, **extra: Any) -> dict[str, Any]:
    """The conf launch_airflow.py sends for a run of the test workflow."""
    conf: dict[str, Any] = {
        "experiment": "xpptut15",
        "run_id": "12",
        "ARP_ROOT_JOB_ID": f"root-{secrets.token_hex(4)}",
        "ARP_LOCATION": "local",
        "user": getpass.getuser(),
        "lute_location": str(REPO_ROOT),
        "lute_params": {"config_file": str(config), "debug": False},
        "slurm_params": [],
    }
    conf.update(extra)
    return conf



class FaultInjector:
    """ASGI wrapper answering 503 (with Retry-After) to chosen requests: a JID outage.

    ``fail(predicate, count)`` makes the next ``count`` requests whose path
    matches ``predicate`` fail; ``refused`` counts the failures served.
    ``wait_answers`` records the statuses of every successful ``/wait`` answer.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._predicate: Callable[[str], bool] = lambda _path: False
        self._remaining = 0
        self.retry_after = "0.05"
        self.refused = 0
        self.wait_answers: list[list[str]] = []

    def fail(self, predicate: Callable[[str], bool], count: int) -> None:
        """Fail the next ``count`` matching requests."""
        self._predicate = predicate
        self._remaining = count

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._remaining and self._predicate(scope["path"]):
            self._remaining -= 1
            self.refused += 1
            body = b'{"success": false, "value": null, "error": "backend unavailable"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"retry-after", self.retry_after.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or not scope["path"].endswith("/wait"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_send(message: dict) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, recording_send)
        with contextlib.suppress(ValueError, TypeError, KeyError):
            value = json.loads(b"".join(chunks))["value"]
            self.wait_answers.append([doc["status"] for doc in value])


@dataclass
class InProcessJID:
    """The real JID app (local backend) served in-process, plus a valid token."""

    app: Any
    asgi: FaultInjector
    token: str
    secret: str
    config: Path


@contextlib.asynccontextmanager
async def in_process_jid(tmp_path: Path, sleep_seconds: float = 2.0) -> AsyncIterator[InProcessJID]:
    """Start the JID app with its lifespan (poller) running; stop it afterwards."""
    from jid_service.app import create_app
    from jid_service.auth import issue_token
    from jid_service.settings import JIDSettings

    secret = secrets.token_urlsafe(32)
    config = write_test_config(tmp_path / "cfg", sleep_seconds)
    settings = JIDSettings(
        backend="local",
        auth_secret=secret,
        db_url=f"sqlite:///{tmp_path / 'jid.db'}",
        state_dir=tmp_path / "jid-state",
        allowed_config_roots=[tmp_path],
        poll_interval=0.2,
        local_max_parallel=4,
    )
    app = create_app(settings)
    token = issue_token(secret, "tester", "*", 3600)
    async with app.router.lifespan_context(app):
        yield InProcessJID(app, FaultInjector(app), token, secret, config)
