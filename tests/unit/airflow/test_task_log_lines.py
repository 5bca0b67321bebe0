"""The job's log as the Airflow task log shows it: prefixed, bounded, saying what was cut."""

from __future__ import annotations

from lute.airflow.step_outcome import task_log_lines


def test_every_line_is_prefixed_with_the_managed_task() -> None:
    lines = task_log_lines("PeakFinder", "found 3 peaks\nrecall 0.9\n")
    assert lines == ["PeakFinder: found 3 peaks", "PeakFinder: recall 0.9"]


def test_a_line_lute_run_task_prefixed_already_is_not_prefixed_twice() -> None:
    lines = task_log_lines("Tester", "Tester: Task started\nsrun: error\nTest: x\n")
    assert lines == ["Tester: Task started", "Tester: srun: error", "Tester: Test: x"]


def test_an_empty_log_shows_nothing() -> None:
    assert task_log_lines("Tester", "") == []


def test_a_long_log_keeps_its_end_and_says_what_was_left_out() -> None:
    text = "".join(f"line {i:05d}\n" for i in range(10_000))  # 110,000 bytes
    lines = task_log_lines("Tester", text, limit_bytes=1100)
    assert lines[-1] == "Tester: line 09999"
    # whole lines only: the cut falls at a line start
    assert all(line.startswith("Tester: line ") for line in lines[1:])
    kept = len(lines) - 1
    assert kept in (99, 100)
    first = lines[0]
    assert "left out" in first and "XCom 'log'" in first
    assert f"({10_000 - kept} lines)" in first
    assert f"first {len(text) - kept * 11} bytes" in first


def test_the_bound_counts_bytes_and_never_splits_a_character() -> None:
    text = "é" * 5000 + "\nend\n"
    lines = task_log_lines("Tester", text, limit_bytes=101)
    assert lines[-1] == "Tester: end"
    assert all("\ufffd" not in line for line in lines)
