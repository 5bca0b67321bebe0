"""The launcher's summary shows what each step cost: queue wait, run time, memory, CPU."""

from __future__ import annotations

import io
from typing import Any, cast

from lute.launch.airflow_api import AirflowClient
from lute.launch.context import ArpContext
from lute.launch.follower import SUMMARY_COLUMNS, Follower, JobView
from lute.launch.logstream import LogStream
from lute.launch.output import Output, bytes_text, percent_text, seconds_text


def test_cost_columns_with_known_and_unknown_measures() -> None:
    text = io.StringIO()
    ctx = ArpContext(experiment="exp1", run="12", arp_job_id="root-1", arp_location="S3DF",
                     authorization="")
    follower = Follower(cast(AirflowClient, None), None, "lute_test", "12_x", ctx, Output(text))
    docs: dict[str, dict[str, Any]] = {
        "Tester": {"_id": "1", "tool_id": "7", "status": "DONE", "def": {"name": "Tester"},
                   "cost": {"queue_wait_seconds": 2.0, "run_seconds": 245.0,
                            "max_rss_bytes": 100888576, "cpu_efficiency": 0.0847,
                            "exit_code": 0, "cpu_seconds": 20.7, "cpus": 1}},
        # FirecREST knows no memory; a job whose cost is not recorded shows nothing
        "Remote": {"_id": "2", "tool_id": "8", "status": "DONE", "def": {"name": "Tester"},
                   "cost": {"queue_wait_seconds": None, "run_seconds": 3.0,
                            "max_rss_bytes": None, "cpu_efficiency": None}},
        "Pending": {"_id": "3", "tool_id": "9", "status": "DONE", "def": {"name": "Tester"}},
    }
    for task, doc in docs.items():
        follower.jobs[doc["_id"]] = JobView(doc, LogStream(task), task_id=task)
    follower.tis = {task: {"task_id": task, "state": "success", "duration": 250.0,
                           "start_date": f"2026-01-01T00:00:0{n}"}
                    for n, task in enumerate(docs)}
    rows = {row[0]: dict(zip(SUMMARY_COLUMNS, row, strict=True))
            for row in follower.summary_rows()}
    assert rows["Tester"]["queue wait"] == "2.0 s" and rows["Tester"]["run time"] == "4m 05s"
    assert rows["Tester"]["peak mem"] == "96.2 MiB" and rows["Tester"]["cpu eff"] == "8%"
    assert [rows["Remote"][c] for c in SUMMARY_COLUMNS[5:]] == ["-", "3.0 s", "-", "-"]
    assert [rows["Pending"][c] for c in SUMMARY_COLUMNS[5:]] == ["-"] * 4
    follower.print_summary()
    table = text.getvalue()
    for column in SUMMARY_COLUMNS:
        assert column in table
    assert "96.2 MiB" in table and "4m 05s" in table


def test_value_texts() -> None:
    assert seconds_text(12.34) == "12.3 s"
    assert seconds_text(7390) == "2h 03m"
    assert bytes_text(512) == "512 B" and bytes_text(3 << 30) == "3.0 GiB"
    assert percent_text(1.0) == "100%"
    for text in (seconds_text, bytes_text, percent_text):
        assert text(None) == "-" and text("12") == "-" and text(True) == "-"
