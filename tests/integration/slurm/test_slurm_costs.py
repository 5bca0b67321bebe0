"""What a real Slurm job cost, through the slurm backend and slurmdbd's sacct."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import pytest

from jid_service.backends.job_cost import CostReading
from jid_service.backends.slurm import SlurmBackend
from jid_service.slurm_options import DEFAULT_SLURM_OPTIONS
from tests.integration.slurm.cluster import scancel_quietly, write_config
from tests.integration.slurm.jid_process import (
    EXPERIMENT,
    JidProcess,
    control_document,
    value,
    wait_statuses,
)
from tests.integration.slurm.test_slurm_backend import spec, wait_finished

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

HOLD_MIB = 120
HOLD_SECONDS = 4


def memory_holder(path: Path, mib: int = HOLD_MIB, seconds: int = HOLD_SECONDS) -> Path:
    """A program for BinaryTester (TestBinary's ``executable``) that holds ``mib`` MiB a while."""
    path.write_text(f"""#!{sys.executable}
import time
block = bytearray({mib} << 20)
block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
time.sleep({seconds})
print("held {mib} MiB")
""")
    path.chmod(0o755)
    return path


def holder_config(directory: Path) -> Path:
    """A task config whose ``TestBinary`` runs :func:`memory_holder`."""
    config = write_config(directory)
    holder = memory_holder(directory / "hold_memory.py")
    text = config.read_text().rstrip()
    config.write_text(text[: -len("...")] + f'TestBinary:\n  executable: "{holder}"\n...\n')
    return config


async def settled_cost(backend: SlurmBackend, tool_id: str, timeout: float = 30.0) -> CostReading:
    """Ask sacct until the job's accounting is complete (steps included)."""
    deadline = time.monotonic() + timeout
    while True:
        reading = (await backend.costs([tool_id])).get(tool_id)
        if reading is not None and reading.settled:
            return reading
        assert time.monotonic() < deadline, f"no settled cost of {tool_id}: {reading}"
        await asyncio.sleep(0.5)


async def test_queue_wait_run_time_and_peak_memory_of_a_batch_job(
    backend: SlurmBackend, tmp_path: Path
) -> None:
    config = holder_config(tmp_path / "cfg")
    # sampled every second: the cluster's JobAcctGatherFrequency (30 s) misses a short job
    job = await backend.submit(spec(config, "BinaryTester", "cost", "--acctg-freq=1"))
    try:
        states, _ = await wait_finished(backend, [job.tool_id])
        assert states[job.tool_id].raw_status == "COMPLETED"
        cost = (await settled_cost(backend, job.tool_id)).cost
    finally:
        scancel_quietly([job.tool_id])
    assert cost.exit_code == 0 and cost.cpus is not None and cost.cpus >= 1
    assert cost.queue_wait_seconds is not None and cost.queue_wait_seconds >= 0
    assert cost.run_seconds is not None and cost.run_seconds >= HOLD_SECONDS
    assert cost.max_rss_bytes is not None and cost.max_rss_bytes >= HOLD_MIB << 20, cost
    assert cost.cpu_seconds is not None and cost.cpu_seconds > 0
    assert cost.cpu_efficiency is not None and 0 < cost.cpu_efficiency <= 1.5


def test_the_jid_records_a_job_s_cost_in_its_document_and_metrics(
    slurm_cluster: None, tmp_path: Path
) -> None:
    config = holder_config(tmp_path / "cfg")
    jid = JidProcess(tmp_path / "jid", [tmp_path / "cfg"], poll_interval=0.25, extra_settings={
        "slurm_allowed_options": [*DEFAULT_SLURM_OPTIONS, "acctg-freq"]})
    jid.start()
    doc = control_document("BinaryTester", config, "--acctg-freq=1", root="root-cost")
    started = None
    try:
        started = value(jid.post(f"/{EXPERIMENT}/start_job", doc))
        final = wait_statuses(jid, [started])[doc["_id"]]
        assert final["status"] == "DONE", final
        deadline = time.monotonic() + 30
        while "cost" not in final:
            assert time.monotonic() < deadline, f"no cost recorded: {final}"
            time.sleep(0.5)
            (final,) = value(httpx.get(f"{jid.base}/jid/ws/jobs", timeout=30,
                                       params={"arp_root_job_id": "root-cost"},
                                       headers=jid.headers))
        cost = final["cost"]
        assert cost["max_rss_bytes"] >= HOLD_MIB << 20, cost
        assert cost["run_seconds"] >= HOLD_SECONDS and cost["queue_wait_seconds"] >= 0
        assert cost["exit_code"] == 0 == final["exit_code"]
        metrics = httpx.get(f"{jid.base}/metrics", timeout=30).text
        assert 'jid_job_max_rss_bytes_count{task="BinaryTester"} 1.0' in metrics
    finally:
        if started is not None:
            scancel_quietly([started["tool_id"]])
        jid.stop()
