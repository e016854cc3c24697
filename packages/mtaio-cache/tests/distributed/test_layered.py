"""LayeredCache: a local tier kept coherent over Pub/Sub, on CacheNode and redis-server.

Two LayeredCache objects in one test each hold their own subscription and sender id, so
to each other they are two processes; test_layered_processes.py runs real ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.cache import AsyncCache, DistributedCache, LayeredCache, cached
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

from .conftest import Cluster, layered_caches
from .conftest import until as _until

Factory = Callable[..., LayeredCache[Any]]


@pytest.fixture
async def layered(cluster: Cluster) -> AsyncIterator[Factory]:
    async with layered_caches(cluster.addresses, 2, "lay") as make:
        yield make


async def test_local_hits_and_invalidation_across_caches(layered: Factory) -> None:
    a, b = layered(), layered()
    assert await a.connected(5.0) and await b.connected(5.0)
    assert isinstance(a, AsyncCache)
    await a.set("k", "v1")
    # a read through that overlaps the write's own invalidation is (rightly) not kept
    await _until(lambda: b.stats().invalidations_received >= 1)
    assert await b.get("k") == "v1"  # read through, now local in b
    assert await b.get("k") == "v1"
    assert b.stats().local_hits == 1
    await a.set("k", "v2")
    await _until(lambda: b.stats().invalidations_received >= 2)
    assert await b.get("k") == "v2"
    assert await a.delete("k")
    await _until(lambda: b.stats().invalidations_received >= 3)
    assert await b.get("k") is None
    stats = a.stats()
    assert stats.invalidations_sent == 3 and stats.connected
    assert stats.remote.writes >= 1


async def test_many_tags_and_clear_reach_every_local_tier(layered: Factory) -> None:
    a, b, c = layered(), layered(), layered()
    for cache in (a, b, c):
        assert await cache.connected(5.0)
    await a.set_many({f"m{i}": i for i in range(10)}, tags=("group",))
    await a.set("other", -1)
    await _until(lambda: min(x.stats().invalidations_received for x in (b, c)) >= 2)
    for cache in (b, c):
        assert await cache.get_many([f"m{i}" for i in range(10)]) == {f"m{i}": i for i in range(10)}
        assert await cache.get("other") == -1
        assert len(cache.local) == 11  # tags came with the read-through
    await a.invalidate_tags("group")
    for cache in (b, c):
        await _until(lambda cache=cache: len(cache.local) == 1)  # type: ignore[misc]
        assert await cache.get("m3") is None
        assert await cache.get("other") == -1
    assert await a.delete_many(["other", "nothing"]) == 1
    await _until(lambda: len(b.local) == 0 and len(c.local) == 0)
    await a.set("z", 1)
    await _until(lambda: b.stats().invalidations_received >= 5)
    assert await b.get("z") == 1
    await c.clear()
    await _until(lambda: b.stats().local_flushes >= 1)
    assert await b.get("z") is None


async def test_get_or_set_loads_once_and_fills_on_next_read(layered: Factory) -> None:
    a, b = layered(), layered()
    assert await a.connected(5.0) and await b.connected(5.0)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "loaded"

    results = await asyncio.gather(
        *(cache.get_or_set("cold", load, ttl=30) for cache in (a, b) for _ in range(10))
    )
    assert results == ["loaded"] * 20
    assert calls == 1
    assert await b.get_or_set("cold", load) == "loaded"
    assert await b.get_or_set("cold", load) == "loaded"
    assert b.stats().local_hits >= 1


async def test_cached_over_a_layered_cache(layered: Factory) -> None:
    a, b = layered(), layered()
    assert await a.connected(5.0) and await b.connected(5.0)
    calls = 0

    async def square(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * x

    sq_a = cached(a, ttl=30)(square)
    sq_b = cached(b, ttl=30)(square)
    assert await sq_a(4) == 16
    assert await sq_b(x=4) == 16  # the same string key in both processes
    assert calls == 1
    assert await sq_a.invalidate(4)
    await _until(lambda: b.stats().invalidations_received >= 1)
    assert await sq_b(4) == 16
    assert calls == 2


async def test_a_read_racing_a_write_is_not_kept(
    layered: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = layered(), layered()
    assert await a.connected(5.0) and await b.connected(5.0)
    await a.set("r", "old")
    await _until(lambda: b.stats().invalidations_received >= 1)
    slowed = b.remote
    original = DistributedCache._read
    gate = asyncio.Event()

    async def slow_read(self: DistributedCache[Any], rkey: bytes, *args: Any, **kw: Any) -> Any:
        found = await original(self, rkey, *args, **kw)
        if self is slowed and not gate.is_set():
            await gate.wait()  # the write and its invalidation go by meanwhile
        return found

    monkeypatch.setattr(DistributedCache, "_read", slow_read)
    reader = asyncio.create_task(b.get("r"))
    await asyncio.sleep(0.05)
    await a.set("r", "new")
    await _until(lambda: b.stats().invalidations_received >= 2)
    gate.set()
    assert await reader == "old"  # it was the value when the read started
    assert "r" not in b.local  # but it was not kept
    assert await b.get("r") == "new"


async def test_lost_connection_drops_the_local_tier(cluster: Cluster, layered: Factory) -> None:
    a, b = layered(heartbeat=0.2), layered(heartbeat=0.2)
    assert await a.connected(5.0) and await b.connected(5.0)
    await a.set("k", "before")
    await _until(lambda: b.stats().invalidations_received >= 1)
    assert await b.get("k") == "before"
    assert "k" in b.local
    admin = cluster.raw(0)
    try:
        # Kill every Pub/Sub connection on the bus node (b's, and a's).
        if cluster.kind == "redis":
            await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
        else:
            await cluster.kill(0)
            await cluster.restart(0)
        await _until(lambda: b.stats().local_flushes >= 1)
        assert len(b.local) == 0
        await a.set("k", "after")
        assert await b.get("k") == "after"  # never the copy from before the disconnect
        assert await b.connected(10.0)  # it reconnects by itself
        assert await b.get("k") == "after"
        await a.set("k", "again")
        await _until(lambda: b.stats().invalidations_received >= 2)
        assert await b.get("k") == "again"
    finally:
        await admin.aclose()


async def test_malformed_messages_flush_and_are_counted(cluster: Cluster, layered: Factory) -> None:
    b = layered()
    assert await b.connected(5.0)
    await b.set("k", "v")
    assert await b.get("k") == "v"
    publisher = cluster.raw(0)
    try:
        for junk in (b"\x00garbage", json.dumps({"s": "x", "k": [1]}).encode(), b"[1]" * 3):
            await publisher.publish(b.channel, junk)
            assert await b.get("k") == "v"  # read again: back in the local tier
        await _until(lambda: b.stats().malformed == 3)
        await publisher.publish(b.channel, json.dumps({"s": "x", "k": ["k"]}).encode())
        await _until(lambda: b.stats().invalidations_received == 1)
    finally:
        await publisher.aclose()
    assert b.stats().local_flushes >= 3


async def test_arguments_are_checked(cluster: Cluster) -> None:
    remote = DistributedCache[str](cluster.addresses, replication_factor=1)
    try:
        with pytest.raises(ConfigurationTypeError, match="remote"):
            LayeredCache({})  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="local_ttl"):
            LayeredCache(remote, local_ttl=0)
        with pytest.raises(ConfigurationError, match="bus"):
            LayeredCache(remote, bus="nowhere:1")
        with pytest.raises(ConfigurationError, match="heartbeat"):
            LayeredCache(remote, heartbeat=float("inf"))
        cache = LayeredCache(remote, bus=remote.nodes[1])
        assert "connected=False" in repr(cache)
    finally:
        await remote.close()


async def test_a_plain_client_sees_the_distributed_tier(cluster: Cluster, layered: Factory) -> None:
    # The layered cache writes through: a plain DistributedCache reader sees its writes.
    a = layered()
    await a.set("shared", "x", ttl=30)
    plain = DistributedCache[Any](cluster.addresses, replication_factor=2, namespace="lay")
    try:
        assert await plain.get("shared") == "x"
    finally:
        await plain.close()
    raw: aioredis.Redis = cluster.raw(0)
    await raw.aclose()
