"""A waiting step's job log, copied into the Airflow task log while the job runs.

While a step waits for its job (in the worker or in the triggerer) it reads
the job's new log through the JID's ``job_log`` (byte offsets, following
``next_offset``) and writes each new complete line to the task log, prefixed
as :func:`~lute.airflow.step_outcome.task_log_line` does. Bounded:

- a step reads at most once per ``interval`` seconds (the operator's
  ``log_interval``, the run's conf key ``jid_log_interval``; 0: off), only
  while its job is RUNNING, at most :data:`LIVE_READ_BYTES` per read;
- the triggers of one process read through one client per JID endpoint, at
  most :data:`MAX_CONCURRENT_READS` at once and :data:`MAX_READS_PER_SECOND`
  per second in all (:class:`ReadGate`), so hundreds of waiting steps cost
  the JID a bounded rate of reads;
- reads are best-effort: one attempt, a short timeout, a failure logged once
  and never the step's failure (the wait's outage policy is the wait's own).

When the job has ended, the end-of-step dump adds only what was not shown
yet: it reads on from the first unshown line (:class:`FinalRead`, at most
:data:`FINAL_READS` reads), so no line is lost at the tail and none is shown
twice. A step that showed nothing live dumps the log's end as before. When a
step hands its wait over (worker -> trigger -> worker), the offset of its
first unshown line (:attr:`LiveLog.line_start`) travels with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any

from lute.airflow.client import AsyncJIDClient, JIDClient
from lute.airflow.retry_policy import NO_RETRY, RetryPolicy
from lute.airflow.step_outcome import TASK_LOG_LIMIT_BYTES, task_log_line, task_log_lines
from lute.launch.logstream import LogStream

DEFAULT_LOG_INTERVAL = 10.0
"""Seconds between two reads of a waiting step's job log (operator ``log_interval``)."""

LOG_INTERVAL_CONF_KEY = "jid_log_interval"
"""A run's conf may set this (seconds, >= 0; 0: off) to override ``log_interval``."""

LIVE_READ_BYTES = 16 * 1024
"""At most this much of the log per live read: a fast writer is caught up at the end."""

MAX_PENDING_BYTES = 4 * LIVE_READ_BYTES
"""An unfinished line longer than this is shown as it is (a progress bar's ``\\r`` lines)."""

FINAL_READ_BYTES = TASK_LOG_LIMIT_BYTES
FINAL_READS = 16
"""The end-of-step read reads at most this many chunks of ``FINAL_READ_BYTES``; a longer
rest is shown as the whole log's end, which then lies wholly after the lines shown."""

FINAL_RETRY = RetryPolicy(attempts=3, budget_seconds=30.0)
"""The end-of-step reads in the worker: a JID outage then delays the step's end little."""

MAX_CONCURRENT_READS = 4
MAX_READS_PER_SECOND = 10.0
"""Live reads of all the triggers of one process, at once and per second."""

MIN_LOG_INTERVAL = 1.0
"""A shorter interval (but 0) is raised to this: a step never reads more often."""

READ_TIMEOUT = 10.0
"""Seconds a live read may take."""


@dataclass
class LiveLog:
    """What one step has shown of its job's log, and when it may read again."""

    task: str
    interval: float = DEFAULT_LOG_INTERVAL
    start: int = 0
    """The offset of the first line not shown yet (handed over by an earlier waiter)."""
    shown_all: bool = False
    """The end-of-step dump was written already (by the trigger): nothing is left to show."""
    clock: Callable[[], float] = time.monotonic
    _stream: LogStream = field(init=False, repr=False)
    _next_read: float = field(init=False, repr=False)
    _failing: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if 0 < self.interval < MIN_LOG_INTERVAL:
            self.interval = MIN_LOG_INTERVAL
        self._stream = LogStream(self.task, next_offset=self.start)
        self._next_read = self.clock() + self.interval

    @property
    def on(self) -> bool:
        """False when live reading is off (``interval`` 0)."""
        return self.interval > 0

    @property
    def line_start(self) -> int:
        """The offset of the first line not shown yet: where the next waiter goes on."""
        return self._stream.line_start

    def seconds_to_next(self) -> float:
        """Seconds until the next read is due (0: now); ``inf`` when off."""
        if not self.on:
            return float("inf")
        return max(0.0, self._next_read - self.clock())

    def take_turn(self, job: dict[str, Any]) -> bool:
        """Whether to read now; a due turn of a job not RUNNING is postponed one interval."""
        if not self.on or self.clock() < self._next_read:
            return False
        self._next_read = self.clock() + self.interval
        return job.get("status") == "RUNNING"

    def request(self) -> tuple[int, int]:
        """The ``offset`` and ``limit`` of the next live read."""
        return self._stream.next_offset, LIVE_READ_BYTES

    def take(self, chunk: dict[str, Any]) -> list[str]:
        """The new complete lines of a ``job_log`` answer, as the task log shows them."""
        self._failing = False
        lines = self._stream.feed(
            str(chunk.get("text") or ""), int(chunk.get("offset") or 0),
            int(chunk.get("next_offset") or 0),
        )
        if self._stream.next_offset - self._stream.line_start > MAX_PENDING_BYTES:
            lines.extend(self._stream.flush())
        return [task_log_line(self.task, line) for line in lines]

    def failed(self, exc: BaseException) -> str | None:
        """A read failed: the line saying so, for the first failure in a row only."""
        if self._failing:
            return None
        self._failing = True
        return f"live log of {self.task} unavailable for now ({exc}); the step goes on"

    def final(self) -> FinalRead:
        """The end-of-step read, going on from the first line not shown."""
        return FinalRead(self)


@dataclass
class FinalRead:
    """The end-of-step dump once the job ended: only what was not shown live."""

    live: LiveLog
    reads: int = 0
    done: bool = False
    overflow: bool = False
    _lines: list[str] = field(default_factory=list)
    _error: BaseException | None = None

    @property
    def needed(self) -> bool:
        """False when nothing was shown live: the whole log's end is the dump."""
        return self.live.line_start > 0

    def request(self) -> tuple[int, int] | None:
        """The next read's ``offset`` and ``limit``; None once the rest has been read."""
        if self.done or not self.needed or self.live.shown_all:
            return None
        if self.reads >= FINAL_READS:
            self.overflow, self.done = True, True
            return None
        return self.live._stream.next_offset, FINAL_READ_BYTES

    def take(self, chunk: dict[str, Any]) -> None:
        """Take one answer of the rest of the log."""
        self.reads += 1
        stream = self.live._stream
        before = stream.next_offset
        complete = bool(chunk.get("complete"))
        self._lines.extend(stream.feed(
            str(chunk.get("text") or ""), int(chunk.get("offset") or 0),
            int(chunk.get("next_offset") or 0), complete=complete,
        ))
        if complete or stream.next_offset == before:
            self._lines.extend(stream.flush())
            self.done = True

    def failed(self, exc: BaseException) -> None:
        """A read of the rest failed: the dump says so after what was read."""
        self._error, self.done = exc, True

    def lines(self, whole_log: str) -> list[str]:
        """The dump's lines; ``whole_log`` is the job's log text (XCom ``log``)."""
        task = self.live.task
        if self.live.shown_all:
            return []
        if not self.needed or self.overflow:
            return task_log_lines(task, whole_log)
        lines = task_log_lines(task, "".join(f"{line}\n" for line in self._lines))
        if self._error is not None:
            lines.append(task_log_line(
                task, f"... the rest of the job's log is unavailable here ({self._error}); "
                "XCom 'log' holds all of it"))
        return lines


# -- the worker: blocking reads ----------------------------------------------------


def read_now(live: LiveLog, client: JIDClient, job: dict[str, Any], log: Any) -> None:
    """One live read if it is due, its lines written to ``log``; never raises."""
    if not live.take_turn(job):
        return
    offset, limit = live.request()
    try:
        chunk = client.with_retry(NO_RETRY).job_log(job, offset=offset, limit=limit)
    except Exception as exc:  # best-effort: a log read never fails the step
        if (line := live.failed(exc)) is not None:
            log.info("%s", line)
        return
    for line in live.take(chunk):
        log.info("%s", line)


def final_lines(live: LiveLog, client: JIDClient, job: dict[str, Any], whole_log: str) -> list[str]:
    """The end-of-step dump of a job whose log was (maybe) shown live up to ``live``."""
    final = live.final()
    client = client.with_retry(FINAL_RETRY)
    while (request := final.request()) is not None:
        try:
            final.take(client.job_log(job, offset=request[0], limit=request[1]))
        except Exception as exc:
            final.failed(exc)
    lines = final.lines(whole_log)
    live.shown_all = True
    return lines


async def afinal_lines(
    live: LiveLog, client: AsyncJIDClient, job: dict[str, Any], whole_log: str
) -> list[str]:
    """:func:`final_lines` on asyncio (the trigger)."""
    final = live.final()
    while (request := final.request()) is not None:
        try:
            final.take(await client.job_log(job, offset=request[0], limit=request[1]))
        except Exception as exc:
            final.failed(exc)
    lines = final.lines(whole_log)
    live.shown_all = True
    return lines


# -- the triggerer: reads in the background, bounded per process -------------------


class ReadGate:
    """At most ``concurrent`` reads at once and ``per_second`` reads per second."""

    def __init__(
        self, concurrent: int = MAX_CONCURRENT_READS, per_second: float = MAX_READS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self._spacing = 1.0 / per_second
        self._next = float("-inf")
        self._clock = clock

    def reserve(self) -> float:
        """Seconds the caller waits before its read: the next free slot of the rate."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._spacing
        return slot - now

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a slot of the rate, then hold one of the concurrent reads."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        async with self._slots:
            yield


class _Clients:
    """One client per JID endpoint for the live reads of a process, while someone reads."""

    def __init__(self) -> None:
        self._made: dict[Hashable, asyncio.Future[AsyncJIDClient]] = {}
        self._users: dict[Hashable, int] = {}

    def acquire(
        self, key: Hashable, make: Callable[[], Awaitable[AsyncJIDClient]]
    ) -> asyncio.Future[AsyncJIDClient]:
        """The endpoint's client, built once (``make`` does not block the loop); then release."""
        self._users[key] = self._users.get(key, 0) + 1
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = asyncio.ensure_future(make())
        return made

    async def release(self, key: Hashable) -> None:
        """One user fewer; the last one closes the client."""
        self._users[key] -= 1
        if self._users[key] > 0:
            return
        del self._users[key]
        made = self._made.pop(key)
        with contextlib.suppress(Exception):
            await (await made).aclose()


@dataclass
class _Pool:
    gate: ReadGate = field(default_factory=ReadGate)
    clients: _Clients = field(default_factory=_Clients)


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    return _pools.setdefault(asyncio.get_running_loop(), _Pool())


class TriggerLiveLog:
    """While the trigger waits (``async with``), its job's log read in the background."""

    def __init__(
        self, live: LiveLog, key: Hashable, make_client: Callable[[], Awaitable[AsyncJIDClient]],
        job: Callable[[], dict[str, Any] | None], log: Any,
    ) -> None:
        self.live = live
        self._key, self._make_client, self._job, self._log = key, make_client, job, log
        self._task: asyncio.Task[None] | None = None
        self._client: asyncio.Future[AsyncJIDClient] | None = None

    @classmethod
    def of(
        cls, live: LiveLog, key: Hashable, endpoint: Any, transport: Any,
        job: Callable[[], dict[str, Any] | None], log: Any,
    ) -> TriggerLiveLog:
        """Reads of ``endpoint`` (a :class:`~lute.airflow.hook.JIDEndpoint`): short, one attempt."""
        reader = replace(endpoint, timeout=min(endpoint.timeout, READ_TIMEOUT))
        return cls(live, key, lambda: reader.aasync_client(NO_RETRY, transport), job, log)

    async def __aenter__(self) -> TriggerLiveLog:
        if self.live.on:
            self._task = asyncio.get_running_loop().create_task(
                self._follow(), name=f"jid-live-log-{self.live.task}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None:
            self._client = None
            await _pool().clients.release(self._key)

    async def _follow(self) -> None:
        pool = _pool()
        while True:
            await asyncio.sleep(self.live.seconds_to_next())
            job = self._job()
            if not job or not self.live.take_turn(job):
                continue
            async with pool.gate.turn():
                await self._read(pool, job)

    async def _read(self, pool: _Pool, job: dict[str, Any]) -> None:
        offset, limit = self.live.request()
        try:
            if self._client is None:
                self._client = pool.clients.acquire(self._key, self._make_client)
            client = await asyncio.shield(self._client)
            chunk = await client.job_log(job, offset=offset, limit=limit)
        except Exception as exc:  # best-effort: a log read never fails the step
            if (line := self.live.failed(exc)) is not None:
                self._log.info("%s", line)
            return
        for line in self.live.take(chunk):
            self._log.info("%s", line)

