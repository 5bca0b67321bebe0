"""What replicas share through the real PostgreSQL: the poller lock, the change feed, claims.

Each test works in a schema of its own; a lock or channel of one schema is
not seen from another.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from jid_service.app import open_store
from jid_service.change_feed import CHANGED, ChangeFeed
from jid_service.leadership import PollerLock, ReplicaRefusedError, hold_local_backend_lock
from jid_service.replica_registry import ReplicaRegistry
from jid_service.store import INTERRUPTED_RAW_STATUS, JobStore

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def _doc(job_id: str) -> dict:
    return {"_id": job_id, "experiment": "exp1", "arp_root_job_id": "r1", "run_num": "1",
            "def": {"_id": "d", "name": "Tester"}}


async def test_one_poller_lock_holder_and_takeover(pg_url: str) -> None:
    store = JobStore(pg_url)
    first, second = PollerLock(store.engine), PollerLock(store.engine)
    try:
        assert await first.hold()
        assert not await second.hold()
        assert await first.hold()  # held: checked, still held
        await first.close()  # as when its process dies: the server frees the lock
        # The server frees it once it has seen the connection end, a moment after
        # the close returns; a standby asks again at every tick, as here.
        async with asyncio.timeout(10):
            while not await second.hold():
                await asyncio.sleep(0.05)
        assert not await first.hold()
    finally:
        await first.close()
        await second.close()
        store.close()


async def test_notifications_reach_the_other_replicas_only(pg_url: str) -> None:
    store = JobStore(pg_url)
    heard: dict[str, list[str]] = {"a": [], "b": []}

    def handler(name: str):
        async def on_message(kind: str) -> None:
            heard[name].append(kind)
        return on_message

    feeds = [ChangeFeed(store.engine, name, handler(name)) for name in ("a", "b")]
    try:
        for feed in feeds:
            await feed.start()
        await feeds[0].publish(CHANGED)
        async with asyncio.timeout(10):
            while not heard["b"]:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert heard == {"a": [], "b": [CHANGED]}  # a sender does not hear itself
    finally:
        for feed in feeds:
            await feed.stop()
        store.close()


def test_only_claims_of_gone_replicas_are_orphans(pg_url: str) -> None:
    store = JobStore(pg_url)
    try:
        alive = ReplicaRegistry(store.engine, "alive/1", "alive")
        gone = ReplicaRegistry(store.engine, "gone/1", "gone")
        leader = ReplicaRegistry(store.engine, "leader/1", "leader")
        for registry in (alive, gone, leader):
            registry.beat()
        claims = {name: str(uuid.uuid4()) for name in ("alive", "gone", "unowned")}
        for claim in claims.values():
            assert store.claim(_doc(claim), "exp1", "alice")
        alive.own_claim(claims["alive"])
        gone.own_claim(claims["gone"])
        # a replica being started (or polling) sees no orphan while their holders live;
        # a claim without an owner row is young, its holder may be writing the row
        assert leader.orphan_claims() == []
        gone.leave()
        assert leader.orphan_claims() == [claims["gone"]]
        assert leader.fail_orphan_claims(list(claims.values())) == 1
        assert store.get(claims["gone"]).raw_status == INTERRUPTED_RAW_STATUS
        assert store.get(claims["alive"]).claimed_only
        assert store.get(claims["unowned"]).claimed_only
        store.complete_claim(claims["alive"], "101", None, "SUBMITTED")
        leader.forget_settled_owners()
        assert leader.orphan_claims() == []
    finally:
        store.close()


def test_the_local_backend_lock_admits_one_process(pg_url: str) -> None:
    held = hold_local_backend_lock(pg_url)
    assert held is not None
    try:
        with pytest.raises(ReplicaRefusedError, match="local jobs live on one host"):
            hold_local_backend_lock(pg_url)
    finally:
        held.close()
    again = hold_local_backend_lock(pg_url)  # released with its connection
    assert again is not None
    again.close()


def test_replicas_starting_together_create_the_tables_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            store = open_store(pg_url)
            ReplicaRegistry(store.engine, f"r{n}/1", f"r{n}")
            store.close()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
