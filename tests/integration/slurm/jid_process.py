"""The Slurm integration tests' JID daemon (slurm backend), control documents and polling."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.slurm.cluster import LAUNCHER, job_env
from tests.support.jid_server import JidServer

EXPERIMENT = "tst00001"


class JidProcess(JidServer):
    """The JID daemon with the slurm backend; jobs it submits find this checkout's tools.

    ``path_prefix`` goes first on the daemon's PATH (command shims that count
    or fail Slurm calls). ``/healthz`` may answer 503 while the controller is
    slow: the daemon counts as started once it answers at all.
    """

    def __init__(self, directory: Path, config_roots: list[Path], poll_interval: float = 0.5,
                 extra_settings: dict[str, Any] | None = None,
                 path_prefix: Path | None = None) -> None:
        settings: dict[str, Any] = {
            "backend": "slurm",
            "launcher": str(LAUNCHER),
            "log_dir": str(directory / "logs"),
            "poll_interval": poll_interval,
            "kill_wait_seconds": 15,
            **(extra_settings or {}),
        }
        env = job_env()
        if path_prefix is not None:
            env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
        super().__init__(directory, config_roots, settings, experiments=[EXPERIMENT],
                         env=env, healthy=(200, 503))


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


value = JidServer.value


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
