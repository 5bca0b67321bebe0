"""What the step log says of a reused job's code, and of a refusal (``done_job``'s answer)."""

from __future__ import annotations

import logging

import pytest

from lute.airflow.done_reuse import _reused, describe_code

ANSWER = {
    "job": {"_id": "d1", "tool_id": "4242", "arp_root_job_id": "root-1", "status": "DONE"},
    "log": "Tester: done\n",
    "provenance": {
        "lute-jid": {"version": "0.1.0", "revision": "1a2b3c4d5e6f7a8b", "dirty": True,
                     "changes": "ab" * 32},
        "facility-tasks": {"version": "2.3", "revision": None, "dirty": None, "changes": None},
    },
    "refused": None,
}


def test_the_reuse_line_names_the_job_and_the_code_it_ran() -> None:
    reused = _reused(ANSWER, "Tester", logging.getLogger("t"))
    assert reused is not None and reused.log == "Tester: done\n"
    line = reused.message("Tester")
    assert line.startswith("skipped Tester: job 4242 (d1, ARP root root-1)")
    assert line.endswith(
        "its code: facility-tasks 2.3, lute-jid 0.1.0 (git 1a2b3c4d5e6f, dirty)")
    assert reused.job["tool_id"] == "4242"


def test_a_refusal_is_logged_and_the_step_runs(caplog: pytest.LogCaptureFixture) -> None:
    refused = {"job": None, "log": "", "provenance": None,
               "refused": "job 4242 (d1) is not reused: the code changed since: "
                          "lute-jid 0.1.0 -> 0.2.0"}
    with caplog.at_level(logging.INFO, logger="t"):
        assert _reused(refused, "Tester", logging.getLogger("t")) is None
    assert "not skipping Tester: job 4242 (d1) is not reused: the code changed since: " \
        "lute-jid 0.1.0 -> 0.2.0" in caplog.text


def test_an_answer_without_provenance_says_so() -> None:
    assert describe_code(None) == "not recorded"
