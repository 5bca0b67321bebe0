"""One long-poll of the JID's ``POST /wait`` for every job the triggers of a process follow.

Each deferred step used to hold its own ``/wait`` request: N waiting steps
cost the JID N open requests and N answers per wake-up. A :class:`SharedWaiter`
follows every job of one JID endpoint (address, token, transport) for all the
triggers of one event loop: it sends one ``/wait`` carrying all of them and,
when it answers, wakes only the triggers whose job changed. A job added while a
poll is in flight restarts the poll (after a short pause that gathers the
steps deferring together), so it is followed at once; a trigger that is
cancelled (the task was cleared or moved to another triggerer) simply stops
being followed. The waiter closes its client once no job is left.

JID outages (connection errors, 429, 502-504) are retried with backoff honouring
``Retry-After``; each follower gives up with :class:`JIDUnavailableError`
once the outage has lasted its own ``outage_timeout``. A refusal of the whole
request (a job the token may not see, say) is narrowed down to the jobs
refused by asking about each alone, so one bad job never fails the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lute.airflow.client import MAX_WAIT_SECONDS, AsyncJIDClient
from lute.airflow.jid_errors import JIDError, JIDUnavailableError
from lute.airflow.job_wait import JobForgottenError

ControlDocument = dict[str, Any]

MAX_JOBS_PER_WAIT = 1000
"""The JID refuses a ``/wait`` with more jobs than this; more are split over several polls."""

GATHER_SECONDS = 0.2
"""How long a poll waits for more jobs to join before it is (re)sent."""


@dataclass(eq=False)
class _Follower:
    """One trigger waiting for a change of one job."""

    status: Any
    outage_timeout: float | None
    wait_timeout: float
    initial_backoff: float
    max_backoff: float
    future: asyncio.Future[ControlDocument] = field(repr=False)


@dataclass(frozen=True)
class WaiterKey:
    """What makes two triggers' waits shareable: the same JID, token, transport and CAs."""

    base_url: str
    base_path: str
    token_digest: str = field(repr=False)
    transport_id: int | None = None
    ca_bundle: str | None = None

    @classmethod
    def of(
        cls, base_url: str, base_path: str, token: str | None, transport: object,
        ca_bundle: str | None = None,
    ) -> WaiterKey:
        """The key for an endpoint; the token is kept only as a digest."""
        digest = hashlib.sha256((token or "").encode()).hexdigest()
        transport_id = None if transport is None else id(transport)
        return cls(base_url, base_path, digest, transport_id, ca_bundle)


class SharedWaiter:
    """Follows many jobs of one JID with one ``/wait`` at a time (per 1000 jobs)."""

    def __init__(self, make_client: Callable[[], Awaitable[AsyncJIDClient]],
                 on_idle: Callable[[], None]):
        self._make_client = make_client
        self._on_idle = on_idle
        self._jobs: dict[str, ControlDocument] = {}
        self._followers: dict[str, set[_Follower]] = {}
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.requests = 0
        """``/wait`` requests sent so far (for tests and benchmarks)."""

    @property
    def followed(self) -> int:
        """How many jobs are followed right now."""
        return len(self._jobs)

    async def next_change(
        self,
        job: ControlDocument,
        *,
        wait_timeout: float = 30.0,
        outage_timeout: float | None = 3600.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> ControlDocument:
        """The job's document once its status differs from ``job``'s.

        Raises :class:`JobForgottenError` if the JID no longer knows the job,
        :class:`JIDUnavailableError` after ``outage_timeout`` seconds of outage,
        or the :class:`JIDError` the JID refused this job with.
        """
        job_id = str(job.get("_id"))
        loop = asyncio.get_running_loop()
        follower = _Follower(
            job.get("status"), outage_timeout, max(0.0, min(wait_timeout, MAX_WAIT_SECONDS)),
            initial_backoff, max_backoff, loop.create_future(),
        )
        known = self._jobs.get(job_id)
        if known is not None and known.get("status") != follower.status:
            # Another trigger already saw this job move on.
            return dict(known)
        if known is None:
            self._jobs[job_id] = dict(job)
            self._joined.set()
        self._followers.setdefault(job_id, set()).add(follower)
        if self._task is None or self._task.done() or self._task.cancelling():
            self._task = loop.create_task(self._run(), name="jid-shared-wait")
        try:
            return await follower.future
        finally:
            self._leave(job_id, follower)

    def _leave(self, job_id: str, follower: _Follower) -> None:
        followers = self._followers.get(job_id)
        if followers is None:
            return
        followers.discard(follower)
        if not followers:
            del self._followers[job_id]
            self._jobs.pop(job_id, None)
        if not self._followers:
            # Not at once: a trigger whose job changed status follows it again
            # right away, and must find the poll (and its client) still there.
            asyncio.get_running_loop().call_later(GATHER_SECONDS, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        if not self._followers and self._task is not None and not self._task.done():
            self._task.cancel()

    def _resolve(self, job_id: str, result: ControlDocument | BaseException) -> None:
        for follower in self._followers.get(job_id, ()):
            if follower.future.done():
                continue
            if isinstance(result, BaseException):
                follower.future.set_exception(result)
            else:
                follower.future.set_result(dict(result))

    # -- the poll loop --------------------------------------------------------------

    def _all_followers(self) -> list[_Follower]:
        return [f for group in self._followers.values() for f in group if not f.future.done()]

    async def _run(self) -> None:
        try:
            client = await self._make_client()
        except Exception as exc:
            self._fail_all(exc)
            return
        outage_since: float | None = None
        attempt = 0
        try:
            while self._all_followers():
                await asyncio.sleep(GATHER_SECONDS)
                self._joined.clear()
                try:
                    await self._poll_until_joined(client)
                    outage_since, attempt = None, 0
                except JIDUnavailableError as exc:
                    now = time.monotonic()
                    outage_since = outage_since or now
                    attempt += 1
                    self._fail_outlasted(exc, now - outage_since)
                    await asyncio.sleep(self._backoff(exc, attempt))
        except Exception as exc:
            # Whatever broke the loop, no follower may be left waiting for it.
            self._fail_all(exc)
        finally:
            await client.aclose()
            if not self._followers:
                self._on_idle()

    async def _poll_until_joined(self, client: AsyncJIDClient) -> None:
        """One ``/wait`` (per chunk) of every followed job; cut short if a job joins."""
        docs = list(self._jobs.values())
        followers = self._all_followers()
        if not docs or not followers:
            return
        timeout = min(f.wait_timeout for f in followers)
        polls = [
            asyncio.ensure_future(self._wait_chunk(client, docs[i:i + MAX_JOBS_PER_WAIT], timeout))
            for i in range(0, len(docs), MAX_JOBS_PER_WAIT)
        ]
        joined = asyncio.ensure_future(self._joined.wait())
        try:
            done, _ = await asyncio.wait([*polls, joined], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (*polls, joined):
                if not pending.done():
                    pending.cancel()
            for pending in (*polls, joined):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
        for poll in polls:
            if poll in done and poll.exception() is not None:
                raise poll.exception()  # type: ignore[misc]

    async def _wait_chunk(
        self, client: AsyncJIDClient, docs: list[ControlDocument], timeout: float
    ) -> None:
        self.requests += 1
        try:
            fresh = await client.wait(docs, timeout=timeout)
        except JIDUnavailableError:
            raise
        except JIDError as exc:
            await self._narrow_refusal(client, docs, exc)
            return
        self._read_answer(docs, fresh)

    def _read_answer(self, sent: list[ControlDocument], fresh: list[ControlDocument]) -> None:
        answered = {str(doc.get("_id")): doc for doc in fresh}
        for doc in sent:
            job_id = str(doc.get("_id"))
            if job_id not in self._jobs:
                continue  # no one follows it any more
            new = answered.get(job_id)
            if new is None:
                self._resolve(job_id, JobForgottenError("JID no longer knows the job"))
                continue
            self._jobs[job_id] = dict(new)
            if new.get("status") != doc.get("status"):
                self._resolve(job_id, new)
            else:
                # A follower that joined with an older status learns the new one too.
                for follower in self._followers.get(job_id, ()):
                    if follower.status != new.get("status") and not follower.future.done():
                        follower.future.set_result(dict(new))

    async def _narrow_refusal(
        self, client: AsyncJIDClient, docs: list[ControlDocument], exc: JIDError
    ) -> None:
        """The JID refused a wait of many jobs: find which ones, fail only those."""
        if len(docs) == 1:
            self._resolve(str(docs[0].get("_id")), exc)
            return
        for doc in docs:
            self.requests += 1
            try:
                fresh = await client.wait([doc], timeout=0)
            except JIDUnavailableError:
                raise
            except JIDError as alone:
                self._resolve(str(doc.get("_id")), alone)
                continue
            self._read_answer([doc], fresh)

    def _fail_all(self, exc: BaseException) -> None:
        for follower in self._all_followers():
            follower.future.set_exception(exc)

    def _fail_outlasted(self, exc: JIDUnavailableError, outage: float) -> None:
        for follower in self._all_followers():
            limit = follower.outage_timeout
            if limit is not None and outage >= limit:
                follower.future.set_exception(
                    JIDUnavailableError(str(exc), exc.status_code, exc.retry_after)
                )

    def _backoff(self, exc: JIDUnavailableError, attempt: int) -> float:
        followers = self._all_followers()
        initial = min((f.initial_backoff for f in followers), default=1.0)
        ceiling = min((f.max_backoff for f in followers), default=60.0)
        if exc.retry_after is not None:
            return min(exc.retry_after, ceiling)
        base = min(initial * 2 ** (attempt - 1), ceiling)
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


_waiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[WaiterKey, SharedWaiter]] = (
    weakref.WeakKeyDictionary()
)


def shared_waiter(
    key: WaiterKey, make_client: Callable[[], Awaitable[AsyncJIDClient]]
) -> SharedWaiter:
    """The waiter of ``key`` on the running event loop, created on first use.

    ``make_client`` is awaited (``JIDEndpoint.aasync_client``: it does not
    block the loop) when the waiter starts polling; the waiter owns and closes that client.
    """
    loop = asyncio.get_running_loop()
    by_key = _waiters.setdefault(loop, {})
    waiter = by_key.get(key)
    if waiter is None:
        waiter = SharedWaiter(make_client, on_idle=lambda: _forget(loop, key, waiter))
        by_key[key] = waiter
    return waiter


def _forget(loop: asyncio.AbstractEventLoop, key: WaiterKey, waiter: SharedWaiter | None) -> None:
    by_key = _waiters.get(loop)
    if by_key is not None and by_key.get(key) is waiter:
        del by_key[key]

