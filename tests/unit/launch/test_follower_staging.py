"""The launcher's summary lists what each job's staging moved, and why staging failed."""

from __future__ import annotations

import io
from typing import Any, cast

from lute.launch.airflow_api import AirflowClient
from lute.launch.context import ArpContext
from lute.launch.follower import Follower, JobView
from lute.launch.logstream import LogStream
from lute.launch.output import Output


def test_summary_lists_staged_files_and_staging_errors() -> None:
    text = io.StringIO()
    ctx = ArpContext(experiment="exp1", run="12", arp_job_id="root-1", arp_location="S3DF",
                     authorization="")
    follower = Follower(cast(AirflowClient, None), None, "lute_demo", "12_x", ctx, Output(text))
    sha = "ab" * 32
    docs: dict[str, dict[str, Any]] = {
        "find_peaks": {"_id": "1", "tool_id": "7", "status": "DONE", "def": {"name": "PeakFinder"},
                       "staged": [{"path": "/w/in.dat", "bytes": 3, "sha256": sha,
                                   "direction": "in"},
                                  {"path": "/s/out.h5", "bytes": 5, "sha256": sha,
                                   "direction": "out"}]},
        "summarise": {"_id": "2", "tool_id": "8", "status": "FAILED",
                      "def": {"name": "PeakSummarizer"},
                      "staging_error": "stage-out failed: stage_out '*.png' matched no file"},
    }
    for task, doc in docs.items():
        follower.jobs[doc["_id"]] = JobView(doc, LogStream(task), task_id=task)
    follower.tis = {task: {"task_id": task, "state": "success"} for task in docs}
    follower.print_summary()
    out = text.getvalue()
    assert f"find_peaks: staged in  /w/in.dat (3 bytes, sha256 {sha})" in out
    assert f"find_peaks: staged out /s/out.h5 (5 bytes, sha256 {sha})" in out
    assert "summarise: stage-out failed: stage_out '*.png' matched no file" in out
