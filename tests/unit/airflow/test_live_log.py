"""A waiting step's job log shown live: when it reads, what it shows once, what the end adds.

Pure logic, no Airflow: a clock the tests move, and a log served the way the
JID's ``job_log`` serves it (byte offsets, an incomplete UTF-8 character held
back, ``complete`` once the job ended and the end was read).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from lute.airflow.client import JIDUnavailableError
from lute.airflow.live_log import (
    FINAL_READ_BYTES,
    FINAL_READS,
    LIVE_READ_BYTES,
    MAX_CONCURRENT_READS,
    MAX_PENDING_BYTES,
    LiveLog,
    ReadGate,
    TriggerLiveLog,
    final_lines,
    read_now,
)
from lute.airflow.step_outcome import task_log_lines

RUNNING = {"_id": "a", "status": "RUNNING", "experiment": "x"}
DONE = {**RUNNING, "status": "DONE"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Log:
    """Collects ``log.info("%s", line)`` calls as a task log would show them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, fmt: str, *args: Any) -> None:
        self.lines.append(fmt % args)


class FakeJID:
    """A job log served like the JID's ``job_log``; ``fail`` makes reads raise."""

    def __init__(self) -> None:
        self.data = b""
        self.finished = False
        self.fail = False
        self.reads: list[tuple[int, int]] = []

    def write(self, text: str) -> None:
        self.data += text.encode()

    def with_retry(self, _policy: Any) -> FakeJID:
        return self

    def job_log(self, _job: dict, offset: int = 0, limit: int = 1 << 20) -> dict:
        self.reads.append((offset, limit))
        if self.fail:
            raise JIDUnavailableError("JID unavailable: connection refused", None)
        part = self.data[offset:offset + limit]
        # the JID holds back up to 3 bytes of a character cut at the limit
        text = part.decode("utf-8", errors="ignore")
        while text.encode() != part[:len(text.encode())]:
            text = text[:-1]
        read = len(text.encode())
        complete = self.finished and (read == 0 or read < limit - 3)
        return {"text": text, "offset": offset, "next_offset": offset + read,
                "complete": complete}


def _tick(clock: Clock, live: LiveLog, jid: FakeJID, log: Log, job: dict = RUNNING) -> None:
    clock.now += live.interval
    read_now(live, jid, job, log)


def test_a_step_reads_once_per_interval_and_only_while_its_job_runs() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 5.0, clock=clock)
    jid.write("Sleeper: tick 1\n")
    read_now(live, jid, RUNNING, log)  # not due before one interval
    assert jid.reads == []
    assert live.seconds_to_next() == 5.0
    clock.now += 5.0
    read_now(live, jid, {**RUNNING, "status": "QUEUED"}, log)  # due, but no log yet
    assert jid.reads == []
    assert live.seconds_to_next() == 5.0  # the turn was postponed, not taken at once
    _tick(clock, live, jid, log)
    read_now(live, jid, RUNNING, log)  # just read: not again within the interval
    assert jid.reads == [(0, LIVE_READ_BYTES)]
    assert log.lines == ["Sleeper: tick 1"]


def test_off_means_no_live_read_and_a_short_interval_is_raised() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    off = LiveLog("Sleeper", 0, clock=clock)
    clock.now += 1e6
    read_now(off, jid, RUNNING, log)
    assert jid.reads == [] and not off.on
    assert off.seconds_to_next() == float("inf")
    assert LiveLog("Sleeper", 0.01, clock=clock).interval == 1.0


def test_lines_are_shown_once_and_an_unfinished_line_waits_for_its_end() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 2.0, clock=clock)
    jid.write("Sleeper: one\nSleeper: tw")
    _tick(clock, live, jid, log)
    assert log.lines == ["Sleeper: one"]
    assert live.line_start == len("Sleeper: one\n")
    _tick(clock, live, jid, log)  # nothing new: nothing shown
    jid.write("o\nsrun: three\n")
    _tick(clock, live, jid, log)
    # the wrapper's own line gets the prefix lute-run-task's lines already carry
    assert log.lines == ["Sleeper: one", "Sleeper: two", "Sleeper: srun: three"]
    first = len("Sleeper: one\nSleeper: tw")
    assert [r[0] for r in jid.reads] == [0, first, first]  # each goes on from the last


def test_a_fast_writer_is_read_a_bounded_chunk_at_a_time() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 1.0, clock=clock)
    jid.write("".join(f"line {i:06d}\n" for i in range(10_000)))  # 120,000 bytes
    _tick(clock, live, jid, log)
    assert jid.reads == [(0, LIVE_READ_BYTES)]
    assert len(log.lines) == LIVE_READ_BYTES // 12
    assert sum(len(line.encode()) for line in log.lines) <= LIVE_READ_BYTES + 10 * len(log.lines)


def test_the_end_adds_only_what_was_not_shown_and_loses_nothing() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 1.0, clock=clock)
    expected = []
    for i in range(40):
        line = f"Sleeper: tick {i} é"
        expected.append(line)
        jid.write(line + "\n")
        if i % 7 == 0:
            _tick(clock, live, jid, log)
    jid.write("Sleeper: last line without newline")
    expected.append("Sleeper: last line without newline")
    jid.finished = True
    shown = list(log.lines)
    assert shown and len(shown) < len(expected)
    end = final_lines(live, jid, DONE, jid.data.decode())
    assert shown + end == expected


def test_a_wait_handed_over_goes_on_from_the_first_line_not_shown() -> None:
    clock, jid = Clock(), FakeJID()
    worker, trigger_log, end_log = Log(), Log(), Log()
    inline = LiveLog("Sleeper", 1.0, clock=clock)
    jid.write("Sleeper: a\nSleeper: b\nSleeper: par")
    _tick(clock, inline, jid, worker)
    # the trigger gets line_start (the unfinished line's start) as its log_offset
    deferred = LiveLog("Sleeper", 1.0, start=inline.line_start, clock=clock)
    jid.write("tial\nSleeper: c\n")
    _tick(clock, deferred, jid, trigger_log)
    jid.write("Sleeper: d\n")
    jid.finished = True
    resumed = LiveLog("Sleeper", 1.0, start=deferred.line_start, clock=clock)
    end_log.lines = final_lines(resumed, jid, DONE, jid.data.decode())
    assert worker.lines == ["Sleeper: a", "Sleeper: b"]
    assert trigger_log.lines == ["Sleeper: partial", "Sleeper: c"]
    assert end_log.lines == ["Sleeper: d"]


def test_nothing_shown_live_dumps_the_log_end_as_before() -> None:
    clock, jid = Clock(), FakeJID()
    live = LiveLog("Tester", 10.0, clock=clock)
    jid.write("Tester: started\nTester: done\n")
    jid.finished = True
    assert final_lines(live, jid, DONE, jid.data.decode()) == task_log_lines(
        "Tester", jid.data.decode())
    assert jid.reads == []  # the XCom's text is enough: no read


def test_a_long_rest_shows_the_log_end_without_repeating_shown_lines() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 1.0, clock=clock)
    jid.write("Sleeper: early\n")
    _tick(clock, live, jid, log)
    rest = FINAL_READS * FINAL_READ_BYTES + 1000
    jid.write("".join(f"Sleeper: {i:010d}\n" for i in range(rest // 20)))
    jid.finished = True
    end = final_lines(live, jid, DONE, jid.data.decode())
    assert len(jid.reads) == 1 + FINAL_READS  # bounded
    assert end == task_log_lines("Sleeper", jid.data.decode())
    assert "Sleeper: early" not in end


def test_a_rest_beyond_the_dump_bound_keeps_its_end() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 1.0, clock=clock)
    jid.write("Sleeper: early\n")
    _tick(clock, live, jid, log)
    jid.write("".join(f"Sleeper: {i:010d}\n" for i in range(10_000)))  # 200 KB
    jid.finished = True
    end = final_lines(live, jid, DONE, jid.data.decode())
    assert end[-1] == "Sleeper: 0000009999"
    assert "left out" in end[0] and "Sleeper: early" not in end


def test_read_failures_never_raise_and_are_said_once_per_outage() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 1.0, clock=clock)
    jid.write("Sleeper: one\n")
    jid.fail = True
    _tick(clock, live, jid, log)
    _tick(clock, live, jid, log)
    assert len(log.lines) == 1 and "unavailable for now" in log.lines[0]
    jid.fail = False
    _tick(clock, live, jid, log)
    assert log.lines[-1] == "Sleeper: one"
    jid.write("Sleeper: two\n")
    jid.fail, jid.finished = True, True
    end = final_lines(live, jid, DONE, jid.data.decode())
    assert len(end) == 1 and "XCom 'log' holds all of it" in end[0]


def test_a_line_without_end_is_shown_once_it_grows_too_long() -> None:
    clock, jid, log = Clock(), FakeJID(), Log()
    live = LiveLog("Sleeper", 1.0, clock=clock)
    jid.write("\r" + "#" * (MAX_PENDING_BYTES + LIVE_READ_BYTES))  # a progress bar
    for _ in range(8):
        _tick(clock, live, jid, log)
    assert len(log.lines) == 1
    assert live.line_start > MAX_PENDING_BYTES


def test_the_read_gate_spaces_reads_at_its_rate() -> None:
    clock = Clock()
    gate = ReadGate(concurrent=2, per_second=10.0, clock=clock)
    assert [round(gate.reserve(), 3) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    clock.now += 0.35
    assert round(gate.reserve(), 3) == 0.05  # the reserved slots still count
    clock.now += 10.0
    assert gate.reserve() == 0.0  # an idle gate does not bank reads


class FakeAsyncClient:
    """A JID client whose reads take a while, counting how many run at once."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    async def job_log(self, job: dict, offset: int = 0, limit: int = 0) -> dict:
        self.counts["in_flight"] += 1
        self.counts["most"] = max(self.counts["most"], self.counts["in_flight"])
        await asyncio.sleep(0.05)
        self.counts["in_flight"] -= 1
        self.counts["reads"] += 1
        text = f"Sleeper: line of {job['_id']}\n"
        return {"text": text, "offset": 0, "next_offset": len(text), "complete": False}

    async def aclose(self) -> None:
        self.counts["closed"] += 1


async def test_the_triggers_of_a_process_share_one_client_and_a_bounded_number_of_reads() -> None:
    counts = {"in_flight": 0, "most": 0, "reads": 0, "built": 0, "closed": 0}

    async def make() -> FakeAsyncClient:
        counts["built"] += 1
        return FakeAsyncClient(counts)

    steps = 12
    logs = [Log() for _ in range(steps)]
    jobs = [{**RUNNING, "_id": f"job{i}"} for i in range(steps)]
    followers = [
        TriggerLiveLog(LiveLog("Sleeper", 1.0), "one-endpoint", make, lambda j=job: j, log)
        for job, log in zip(jobs, logs, strict=True)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for follower in followers:
            await stack.enter_async_context(follower)
        while not all(log.lines for log in logs):
            await asyncio.sleep(0.05)
    assert [log.lines for log in logs] == [[f"Sleeper: line of job{i}"] for i in range(steps)]
    assert counts["built"] == 1 and counts["closed"] == 1
    assert counts["most"] <= MAX_CONCURRENT_READS


def test_a_dump_written_by_the_trigger_is_not_written_again_by_the_worker() -> None:
    clock, jid = Clock(), FakeJID()
    trigger = LiveLog("Tester", 10.0, clock=clock)
    jid.write("Tester: started\nTester: done\n")
    jid.finished = True
    assert final_lines(trigger, jid, DONE, jid.data.decode())  # the trigger's dump
    assert trigger.shown_all  # sent as the event's log_shown when the worker resumes
    worker = LiveLog("Tester", 10.0, start=trigger.line_start, shown_all=True, clock=clock)
    assert final_lines(worker, jid, DONE, jid.data.decode()) == []
    assert jid.reads == []
