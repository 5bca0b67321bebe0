"""Fixtures for the firecrest backend tests: a respx-mocked FirecREST v2 and a token stub.

pyfirecrest fetches tokens with ``requests`` (respx cannot see it), so the
tests hand the backend a stub token source shaped like pyfirecrest's
``ClientCredentialsAuth``: it caches its token in ``_access_token`` and counts
how many tokens it issued.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import respx

from jid_service.backends.base import SubmitSpec
from jid_service.backends.firecrest import FirecrestBackend

BASE = "https://firecrest.example.org"
SYSTEM = "cluster"
WORK_DIR = "/scratch/lute/work"
JOBS_URL = f"/compute/{SYSTEM}/jobs"
VIEW_URL = f"/filesystem/{SYSTEM}/ops/view"
DOWNLOAD_URL = f"/filesystem/{SYSTEM}/ops/download"
VIEW_SIZE_LIMIT = 5 * 1024 * 1024


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
            "stateReason": "",
            "exitCode": exit_code,
            "interruptSignal": signal,
        },
        "tasks": [],
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
        "user": "alice(1000)",
        "workingDirectory": WORK_DIR,
        "priority": 1,
    }


def firecrest_error(
    status: int, message: str, caused_by: list[str] | None = None, error_type: str = "error"
) -> httpx.Response:
    """An error answer shaped as FirecREST v2 sends it."""
    return httpx.Response(
        status,
        json={
            "errorType": error_type,
            "message": message,
            "causedBy": caused_by,
            "data": None,
            "user": "alice",
        },
    )


def sbatch_failure(*stderr_lines: str) -> httpx.Response:
    """FirecREST's answer when sbatch exits 1: a 500 carrying sbatch's stderr."""
    stderr = "".join(line + "\n" for line in stderr_lines)
    return firecrest_error(
        500, f"Unexpected Slurm command response. exit_status:1 std_err:{stderr}"
    )


CHANNEL_CLOSED = "('Channel not open for sending',)"
"""The message of FirecREST's 500 when its SSH command timeout cut a command."""

OUTPUT_BUFFER = 5 * 1024 * 1024
"""The gateway's default buffer for one command's output."""


class FakeFiles:
    """Remote files behind ``ops/view`` and ``ops/download``, as FirecREST v2 serves them.

    ``view`` runs what the server runs: ``dd bs=size skip=offset//size count=2``,
    the output (with a two-line header) refused with 413 above the buffer,
    decoded with ``errors="replace"`` and sliced in *characters*
    ``[offset % size : offset % size + size]``. ``download`` base64-encodes the
    whole file through the same buffer and answers the raw bytes.
    """

    def __init__(self, buffer: int = OUTPUT_BUFFER) -> None:
        self.files: dict[str, bytes] = {}
        self.buffer = buffer
        self.views: list[tuple[int, int]] = []
        self.downloads = 0

    def view(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        size = int(params.get("size", VIEW_SIZE_LIMIT))
        offset = int(params.get("offset", 0))
        if size <= 0 or size > VIEW_SIZE_LIMIT:
            return httpx.Response(
                400, json={"errorType": "validation",
                           "message": f"`size` value must be less than {VIEW_SIZE_LIMIT} bytes"})
        self.views.append((size, offset))
        data = self.files.get(params["path"])
        if data is None:
            return firecrest_error(404, f"stat: cannot stat '{params['path']}': "
                                        "No such file or directory")
        start = min(offset, len(data))
        skip = start // size
        window = data[skip * size : skip * size + 2 * size]
        header = f"{len(data)}\n{start}\n".encode()
        if len(header) + len(window) > self.buffer:
            return firecrest_error(413, "Command output exceeded buffer limit.")
        text = window.decode("utf-8", errors="replace")
        i = start % size
        content = text[i : i + size]
        return httpx.Response(200, json={"output": {
            "content": content,
            "fileSize": len(data),
            "startOffset": start,
            "endOffset": start + len(content) - len(data),
        }})

    def download(self, request: httpx.Request) -> httpx.Response:
        self.downloads += 1
        data = self.files.get(request.url.params["path"])
        if data is None:
            return firecrest_error(404, "No such file or directory")
        if len(base64.b64encode(data)) > self.buffer:
            return firecrest_error(413, "Command output exceeded buffer limit.")
        return httpx.Response(200, content=data,
                              headers={"Content-Type": "application/octet-stream"})


def route_files(router: respx.MockRouter, files: FakeFiles) -> None:
    """Serve ``files`` on the router's ``ops/view`` and ``ops/download`` routes."""
    router.get(VIEW_URL).mock(side_effect=files.view)
    router.get(DOWNLOAD_URL).mock(side_effect=files.download)
