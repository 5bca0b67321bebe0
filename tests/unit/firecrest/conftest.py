"""Fixtures for the firecrest backend tests: a respx-mocked FirecREST v2 and a token stub.

pyfirecrest fetches tokens with ``requests`` (respx cannot see it), so the
tests hand the backend a stub token source shaped like pyfirecrest's
``ClientCredentialsAuth``: it caches its token in ``_access_token`` and counts
how many tokens it issued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import respx

from jid_service.backends.base import SubmitSpec
from jid_service.backends.firecrest import FirecrestBackend

BASE = "https://firecrest.example.org"
SYSTEM = "cluster"
WORK_DIR = "/scratch/lute/work"
JOBS_URL = f"/compute/{SYSTEM}/jobs"
VIEW_URL = f"/filesystem/{SYSTEM}/ops/view"


class StubTokenSource:
    """Issues tokens ``tok-1``, ``tok-2``...; reuses the cached one like ClientCredentialsAuth."""

    def __init__(self) -> None:
        self._access_token: str | None = None
        self._token_expiration_ts: float | None = None
        self.issued = 0

    def get_access_token(self) -> str:
        if self._access_token is None:
            self.issued += 1
            self._access_token = f"tok-{self.issued}"
            self._token_expiration_ts = 1e12
        return self._access_token


@pytest.fixture
def tokens() -> StubTokenSource:
    return StubTokenSource()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
async def backend(tokens: StubTokenSource) -> AsyncIterator[FirecrestBackend]:
    be = FirecrestBackend(
        firecrest_url=BASE,
        system=SYSTEM,
        work_dir=WORK_DIR,
        token_source=tokens,
        launcher="/opt/lute/bin/lute-run-task",
        max_attempts=3,
        retry_budget=30.0,
        backoff_initial=0.001,
        backoff_max=0.002,
        request_timeout=5.0,
    )
    yield be
    await be.aclose()


def make_spec(**changes: object) -> SubmitSpec:
    """A validated submission as the JID would hand it to a backend."""
    fields: dict[str, object] = {
        "job_key": "ctl-doc-0001",
        "experiment": "xpptut15",
        "run": "12",
        "user": "alice",
        "taskname": "Tester",
        "config_path": Path("/sdf/data/lute/config/test.yaml"),
        "debug": False,
        "slurm_args": ("--partition=debug", "--ntasks=2", "--time=10"),
    }
    fields.update(changes)
    return SubmitSpec(**fields)  # type: ignore[arg-type]


def listed_job(
    job_id: str,
    state: object,
    exit_code: int | None = 0,
    signal: int | None = 0,
    name: str = "Tester-0",
) -> dict[str, object]:
    """One job of ``GET /compute/{system}/jobs`` as FirecREST v2 sends it (SlurmJob model)."""
    return {
        "jobId": job_id,
        "name": name,
        "status": {
            "state": state,
            "stateReason": "None",
            "exitCode": exit_code,
            "interruptSignal": signal,
        },
        "tasks": None,
        "time": {
            "elapsed": 3,
            "start": 1700000000,
            "end": 1700000003,
            "suspended": 0,
            "limit": 600,
        },
        "account": "lcls",
        "allocationNodes": 1,
        "cluster": SYSTEM,
        "group": "lcls",
        "nodes": "node01",
        "partition": "debug",
        "killRequestUser": None,
        "user": "alice",
        "workingDirectory": WORK_DIR,
        "priority": 1,
    }
