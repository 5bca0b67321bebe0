"""What finished Slurm jobs cost: sacct's sizes, durations and times, steps, unknown fields."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from jid_service.backends.slurm import SlurmBackend
from jid_service.backends.slurm.accounting import (
    SACCT_COST_FORMAT,
    parse_costs,
    parse_duration,
    parse_size,
    parse_time,
)

# sacct -n -P -j 444,453,433 --format=SACCT_COST_FORMAT with SLURM_TIME_FORMAT=%s
# on Slurm 22.05 (jobacct_gather/linux): MaxRSS on the .batch line only
REAL = """\
433|CANCELLED by 0|1796123934|1796123936|1796123936|00:00:00|0:0||00:00.449|1
433.batch|FAILED|1796123936|1796123936|1796123937|00:00:01|15:0||00:00.449|1
444|COMPLETED|1796124002|1796124005|1796124008|00:00:03|0:0||00:00.254|1
444.batch|COMPLETED|1796124005|1796124005|1796124008|00:00:03|0:0|98524K|00:00.254|1
"""

MULTI_STEP = """\
900|FAILED|1700000000|1700000100|1700003700|01:00:00|3:0||1-01:00:00|2
900.batch|FAILED|1700000100|1700000100|1700003700|01:00:00|3:0|1.50G|00:30:00|2
900.extern|COMPLETED|1700000100|1700000100|1700003700|01:00:00|0:0|1024K|00:00.001|2
900.0|COMPLETED|1700000200|1700000200|1700003600|00:56:40|0:0|3G|23:59:59|2
"""


def test_sizes_carry_binary_suffixes() -> None:
    assert parse_size("98524K") == 98524 * 1024
    assert parse_size("1.50G") == 3 * 512 * 1024**2
    assert parse_size("2M") == 2 * 1024**2
    assert parse_size("0") == 0
    assert parse_size("123") == 123
    assert parse_size("") is None
    assert parse_size("n/a") is None


def test_durations_of_elapsed_and_totalcpu() -> None:
    assert parse_duration("00:00:03") == 3
    assert parse_duration("00:00.449") == pytest.approx(0.449)
    assert parse_duration("01:02:03") == 3723
    assert parse_duration("1-02:03:04") == 93784
    assert parse_duration("") is None
    assert parse_duration("INVALID") is None


def test_times_as_unix_seconds_or_iso() -> None:
    assert parse_time("1796124002") == 1796124002
    assert parse_time("Unknown") is None
    assert parse_time("None") is None
    assert parse_time("") is None
    assert parse_time("2026-12-01T11:19:43") is not None


def test_a_real_batch_job_and_a_cancelled_one() -> None:
    costs = parse_costs(REAL)
    done = costs["444"]
    assert done.settled
    assert done.cost.queue_wait_seconds == 3 and done.cost.run_seconds == 3
    assert done.cost.max_rss_bytes == 98524 * 1024  # from the .batch line
    assert done.cost.exit_code == 0 and done.cost.cpus == 1
    assert done.cost.cpu_seconds == pytest.approx(0.254)
    assert done.cost.cpu_efficiency == pytest.approx(0.254 / 3, abs=1e-4)
    cancelled = costs["433"].cost
    # too short to be sampled: no memory, and no efficiency of zero seconds
    assert cancelled.max_rss_bytes is None and cancelled.cpu_efficiency is None
    assert cancelled.queue_wait_seconds == 2 and cancelled.run_seconds == 0


def test_the_peak_of_several_steps_and_the_job_s_cpu_time() -> None:
    cost = parse_costs(MULTI_STEP)["900"].cost
    assert cost.max_rss_bytes == 3 * 1024**3  # the largest step
    assert cost.cpu_seconds == 90000  # the allocation line's TotalCPU
    assert cost.run_seconds == 3600 and cost.queue_wait_seconds == 100
    assert cost.exit_code == 3 and cost.cpus == 2
    assert cost.cpu_efficiency == pytest.approx(90000 / (3600 * 2))


def test_unsettled_until_every_step_has_ended() -> None:
    lagging = ("901|COMPLETED|1700000000|1700000001|1700000009|00:00:08|0:0||00:01.000|1\n"
               "901.batch|RUNNING|1700000001|1700000001|Unknown|00:00:08|0:0||00:00:00|1\n")
    reading = parse_costs(lagging)["901"]
    assert not reading.settled
    assert reading.cost.run_seconds == 8 and reading.cost.max_rss_bytes is None
    no_steps_yet = "902|COMPLETED|1700000000|1700000001|1700000009|00:00:08|0:0||00:01.000|1\n"
    assert not parse_costs(no_steps_yet)["902"].settled


def test_a_job_that_never_started() -> None:
    reading = parse_costs("903|CANCELLED by 0|1700000000|Unknown|1700000050|00:00:00|0:0|||1\n")
    assert reading["903"].settled  # nothing more will come
    cost = reading["903"].cost
    assert cost.queue_wait_seconds is None and cost.cpu_seconds is None
    assert cost.max_rss_bytes is None and cost.run_seconds == 0


def test_lines_of_other_jobs_and_other_shapes_are_left_out() -> None:
    orphan_step = "555.batch|COMPLETED|1|1|2|00:00:01|0:0|1K|00:00.1|1\n"
    output = REAL + "junk line\n444.batch|too|few\n" + orphan_step
    costs = parse_costs(output, wanted=["444", "555"])
    assert set(costs) == {"444"}  # 555 has no allocation line; 433 is not wanted


def test_one_sacct_for_all_jobs_with_times_in_unix_seconds(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct.out").write_text(REAL)
    (bin_dir / "sacct").write_text(
        f"#!/bin/sh\necho \"$SLURM_TIME_FORMAT $*\" >> '{bin_dir}/calls'\n"
        f"cat '{bin_dir}/sacct.out'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    backend = SlurmBackend(tmp_path / "submit_slurm.sh", tmp_path / "logs", fallback="sacct")
    costs = asyncio.run(backend.costs(["444", "433", "not-an-id"]))
    assert set(costs) == {"433", "444"}
    calls = (bin_dir / "calls").read_text().splitlines()
    assert calls == [f"%s -n -P -j 433,444 --format={SACCT_COST_FORMAT}"]  # steps included

    (bin_dir / "sacct").write_text(
        "#!/bin/sh\necho 'sacct: error: Accounting storage is disabled' >&2; exit 1\n")
    assert asyncio.run(backend.costs(["444"])) == {}
    backend.fallback = "jobcomp"  # the jobcomp log has no costs: nothing is asked
    assert asyncio.run(backend.costs(["444"])) == {}
    assert backend.calls["sacct"] == 2
