"""Several real ``jid-service serve`` replicas on one PostgreSQL store, for the replica tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.slurm.jid_process import JidProcess
from tests.support.jid_server import JidServer


def share_store(first: JidServer, *others: JidServer) -> None:
    """Let ``others`` accept ``first``'s tokens (one signing secret, as replicas have)."""
    for other in others:
        other.secret, other.token, other.headers = first.secret, first.token, first.headers


def slurm_replicas(directory: Path, config_root: Path, db_url: str, count: int = 2,
                   poll_interval: float = 1.0, path_prefixes: dict[int, Path] | None = None,
                   ) -> list[JidProcess]:
    """``count`` slurm-backend replicas on ``db_url``, sharing one secret and one log dir."""
    replicas: list[JidProcess] = []
    secret: dict[str, Any] = {}
    for i in range(count):
        jid = JidProcess(directory / f"replica-{i}", [config_root], poll_interval=poll_interval,
                         extra_settings={"db_url": db_url, "replica_name": f"replica-{i}",
                                         "log_dir": str(directory / "logs"), **secret},
                         path_prefix=(path_prefixes or {}).get(i))
        if not replicas:
            secret = {"auth_secret": jid.secret}
        replicas.append(jid)
    share_store(*replicas)
    # the later replicas' settings files carry the first one's secret already
    return replicas


def health(jid: JidServer) -> dict[str, Any]:
    """The ``/healthz`` value (200 or 503 alike)."""
    return httpx.get(f"{jid.base}/healthz", timeout=15).json()["value"]


def leader_of(replicas: list[JidServer], timeout: float = 30.0) -> JidServer:
    """The one replica whose ``/healthz`` says it polls; fails unless exactly one does."""
    deadline = time.monotonic() + timeout
    while True:
        roles = {jid.port: health(jid)["poller"] for jid in replicas}
        leaders = [jid for jid in replicas if roles[jid.port] == "leader"]
        if len(leaders) == 1 and all(r in ("leader", "standby") for r in roles.values()):
            return leaders[0]
        if time.monotonic() > deadline:
            pytest.fail(f"not exactly one polling replica: {roles}", pytrace=False)
        time.sleep(0.1)
