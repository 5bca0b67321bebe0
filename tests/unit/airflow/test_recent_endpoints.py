"""One connection lookup serves the triggers that ask at once, and for a few seconds after."""

from __future__ import annotations

import asyncio

import pytest

from lute.airflow.recent_endpoints import RecentLookups


class Lookups:
    """A lookup that counts its calls, answers after ``delay`` and can be made to fail."""

    def __init__(self, delay: float = 0.05) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = False

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise LookupError("no such connection")
        return f"endpoint {self.calls}"


async def test_concurrent_asks_share_one_lookup() -> None:
    recent: RecentLookups[str] = RecentLookups(seconds=10)
    lookup = Lookups()
    answers = await asyncio.gather(*(recent.get("jid_default", lookup) for _ in range(12)))
    assert answers == ["endpoint 1"] * 12
    assert lookup.calls == 1
    # another connection is looked up on its own
    assert await recent.get("jid_siteb", lookup) == "endpoint 2"


async def test_a_kept_result_expires() -> None:
    recent: RecentLookups[str] = RecentLookups(seconds=0.2)
    lookup = Lookups(delay=0)
    assert await recent.get("c", lookup) == "endpoint 1"
    assert await recent.get("c", lookup) == "endpoint 1"
    await asyncio.sleep(0.25)
    assert await recent.get("c", lookup) == "endpoint 2"


async def test_a_failed_lookup_is_not_kept() -> None:
    recent: RecentLookups[str] = RecentLookups(seconds=10)
    lookup = Lookups(delay=0)
    lookup.fail = True
    with pytest.raises(LookupError):
        await recent.get("c", lookup)
    lookup.fail = False
    assert await recent.get("c", lookup) == "endpoint 2"


async def test_a_cancelled_asker_leaves_the_lookup_to_the_others() -> None:
    recent: RecentLookups[str] = RecentLookups(seconds=10)
    lookup = Lookups(delay=0.1)
    first = asyncio.ensure_future(recent.get("c", lookup))
    second = asyncio.ensure_future(recent.get("c", lookup))
    await asyncio.sleep(0.02)
    first.cancel()
    assert await second == "endpoint 1"
    assert lookup.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first
