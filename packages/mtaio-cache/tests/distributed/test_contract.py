"""The behaviour contract of DistributedCache, against CacheNode and redis-server clusters.

``cluster`` (conftest.py) is a ``Cluster``: three nodes of one backend with kill/restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.cache import (
    CacheSerializationError,
    DistributedCache,
    SignedPickleSerializer,
)
from mtaio.cache._envelope import KIND_VALUE, pack_envelope, unpack_envelope

KEY = b"0123456789abcdef0123456789abcdef"
RAN: list[str] = []


class Planted:
    def __reduce__(self) -> tuple[Any, ...]:
        return (RAN.append, ("pwned",))


def now_version() -> int:
    """A version from the current wall clock, as a writer in sync would make it."""
    return int(time.time() * 1000) << 16


def make(cluster: Any, **kw: Any) -> DistributedCache[Any]:
    kw.setdefault("timeout", 0.5)
    return DistributedCache[Any](cluster.addresses, **kw)


async def raw_get(client: aioredis.Redis, key: bytes) -> bytes:
    value = await client.get(key)
    assert isinstance(value, bytes)
    return value


async def holders(raw: list[aioredis.Redis], rkey: bytes) -> list[int]:
    return [i for i, c in enumerate(raw) if await c.get(rkey) is not None]


async def test_round_trip_and_api(cluster: Any, raw_clients: list[aioredis.Redis]) -> None:
    async with make(cluster) as cache:
        assert await cache.get("missing") is None
        assert await cache.get("missing", "fallback") == "fallback"
        await cache.set("user:1", {"name": "Ada", "tags": ["x"], "n": 1.5})
        assert await cache.get("user:1") == {"name": "Ada", "tags": ["x"], "n": 1.5}
        assert await cache.has("user:1") and not await cache.has("missing")
        assert await cache.delete("user:1") is True
        assert await cache.delete("user:1") is False
        assert await cache.get("user:1") is None and not await cache.has("user:1")
        await cache.set("none", None)
        assert await cache.has("none")
        stats = cache.stats()
        assert stats.writes == 2 and stats.hits == 1 and stats.misses >= 2
        assert all(n.up for n in stats.nodes.values())


async def test_replicas_hold_the_key_under_the_namespace(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=2, namespace="app") as cache:
        await cache.set("k", "v")
        names = cache.replicas("k")
        assert len(names) == 2 and set(names) <= set(cache.nodes)
        where = await holders(raw_clients, b"app:k")
        assert sorted(cache.nodes[i] for i in where) == sorted(names)
        env = unpack_envelope(await raw_get(raw_clients[where[0]], b"app:k"))
        assert env.kind == KIND_VALUE and env.payload == b'"v"'


async def test_ttl_travels_as_px(cluster: Any, raw_clients: list[aioredis.Redis]) -> None:
    async with make(cluster, replication_factor=3, default_ttl=30.0) as cache:
        await cache.set("a", 1, ttl=5)
        await cache.set("b", 2)
        await cache.set("c", 3)
        for c in raw_clients:
            assert 4000 < await c.pttl(b"mtaio:a") <= 5000
            assert 29000 < await c.pttl(b"mtaio:b") <= 30000
        assert await cache.touch("c", ttl=100)
        assert not await cache.touch("missing")
        for c in raw_clients:
            assert 99000 < await c.pttl(b"mtaio:c") <= 100000
        with pytest.raises(ValueError, match="ttl must be a positive"):
            await cache.set("x", 1, ttl=0)
    async with make(cluster, replication_factor=1) as cache:
        await cache.set("forever", 1)
        where = await holders(raw_clients, b"mtaio:forever")
        assert await raw_clients[where[0]].pttl(b"mtaio:forever") == -1


async def test_clear_only_touches_the_namespace(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    for c in raw_clients:
        await c.set(b"other:k", b"keep")
        await c.set(b"mtaio2:k", b"keep")
    async with make(cluster, namespace="mtaio") as cache:
        await cache.set_many({f"k{i}": i for i in range(300)})
        assert len(await cache.get_many([f"k{i}" for i in range(300)])) == 300
        await cache.clear()
        assert await cache.get_many([f"k{i}" for i in range(300)]) == {}
    for c in raw_clients:
        assert await c.get(b"other:k") == b"keep" and await c.get(b"mtaio2:k") == b"keep"
        assert await c.dbsize() == 2


async def test_many_operations(cluster: Any) -> None:
    async with make(cluster) as cache:
        await cache.set_many({"a": 1, "b": 2, "c": 3}, ttl=60)
        assert await cache.get_many(["a", "b", "zz"]) == {"a": 1, "b": 2}
        assert await cache.delete_many(["a", "zz"]) == 1
        assert await cache.get_many(["a", "b", "c"]) == {"b": 2, "c": 3}


async def test_unencodable_value_fails_at_set_and_writes_nothing(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster) as cache:
        with pytest.raises(CacheSerializationError, match="set as JSON"):
            await cache.set("bad", {1, 2})
        with pytest.raises(CacheSerializationError):
            await cache.set_many({"ok": 1, "bad": object()})
        assert await holders(raw_clients, b"mtaio:ok") == []


async def test_newest_version_wins_and_stale_replicas_are_repaired(
    cluster: Any, raw_clients: list[aioredis.Redis], run_soon: Callable[..., Any]
) -> None:
    async with make(cluster, replication_factor=3, read_quorum=3, write_quorum=3) as cache:
        await cache.set("k", "new")
        old = pack_envelope(KIND_VALUE, 1, 1, 0, b'"old"')
        await raw_clients[0].set(b"mtaio:k", old)
        await raw_clients[1].delete(b"mtaio:k")
        assert await cache.get("k") == "new"
        await asyncio.sleep(0.05)
        for c in raw_clients:
            assert unpack_envelope(await raw_get(c, b"mtaio:k")).payload == b'"new"'
        assert cache.stats().repairs == 2
        # a write that lost the race (older version) never overrides the newer one
        await raw_clients[2].set(b"mtaio:k", old)
        assert await cache.get("k") == "new"


async def test_deletes_leave_tombstones_that_repair_cannot_undo(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=3, read_quorum=2) as cache:
        await cache.set("k", "v")
        before = await raw_get(raw_clients[0], b"mtaio:k")
        await cache.delete("k")
        await raw_clients[0].set(b"mtaio:k", before)  # a replica that missed the delete
        assert await cache.get("k") is None


async def test_auto_pipelining_batches_concurrent_operations(cluster: Any) -> None:
    async with make(cluster, replication_factor=1) as cache:
        await cache.set("warm", 1)
        before = sum(n.round_trips for n in cache.stats().nodes.values())
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(200)))
        values = await asyncio.gather(*(cache.get(f"k{i}") for i in range(200)))
        assert values == list(range(200))
        trips = sum(n.round_trips for n in cache.stats().nodes.values()) - before
        assert trips <= 2 * 3 * 2  # a batch or two per node per phase, not 400 round trips


async def test_planted_pickle_is_never_executed(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    planted = pickle.dumps(Planted())
    for c in raw_clients:
        await c.set(b"mtaio:evil", planted)
        await c.set(b"mtaio:evil2", pack_envelope(KIND_VALUE, now_version(), 1, 0, planted))
    async with make(cluster) as cache:
        with pytest.raises(CacheSerializationError):
            await cache.get("evil")
        with pytest.raises(CacheSerializationError):
            await cache.get("evil2")
    async with make(cluster, serializer=SignedPickleSerializer(KEY)) as cache:
        with pytest.raises(CacheSerializationError, match="unsigned"):
            await cache.get("evil2")
        await cache.set("tuple", (1, {2}))
        assert await cache.get("tuple") == (1, {2})
    assert RAN == []


async def test_snippet_style_positional_nodes_list(cluster: Any) -> None:
    cache = DistributedCache[str](cluster.addresses[:2])
    try:
        await cache.set("k", "v")
        assert await cache.get("k") == "v"
    finally:
        await cache.close()


async def test_stats_per_node(cluster: Any) -> None:
    async with make(cluster, replication_factor=1) as cache:
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(60)))
        nodes = cache.stats().nodes
        assert set(nodes) == set(cache.nodes)
        assert sum(n.ops for n in nodes.values()) == 60
        for n in nodes.values():
            assert n.up and n.errors == 0 and n.timeouts == 0
            assert n.round_trips <= n.ops
            assert n.latency_max_ms >= n.latency_avg_ms > 0
            assert n.queued == 0 and n.in_flight == 0
        snapshot = cache.stats()
        with pytest.raises(dataclasses.FrozenInstanceError):
            snapshot.hits = 1  # type: ignore[misc]
        as_dict = dataclasses.asdict(snapshot)
        assert as_dict["nodes"][cache.nodes[0]]["ops"] == snapshot.nodes[cache.nodes[0]].ops


async def test_read_repair_chance_repairs_replicas_behind_a_single_replica_read(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=3, read_repair_chance=1.0) as cache:
        await cache.set("k", "new")
        first = cache.nodes.index(cache.replicas("k")[0])
        others = [c for i, c in enumerate(raw_clients) if i != first]
        await others[0].set(b"mtaio:k", pack_envelope(KIND_VALUE, 1, 1, 0, b'"old"'))
        await others[1].set(b"mtaio:k", b"garbage")
        assert await cache.get("k") == "new"
        for _ in range(50):
            if cache.stats().repairs == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        for c in raw_clients:
            assert unpack_envelope(await raw_get(c, b"mtaio:k")).payload == b'"new"'
    async with make(cluster, replication_factor=3, read_repair_chance=0.0) as cache:
        await others[0].set(b"mtaio:k", pack_envelope(KIND_VALUE, 1, 1, 0, b'"old"'))
        assert await cache.get("k") == "new"
        await asyncio.sleep(0.02)
        assert cache.stats().repairs == 0


async def test_huge_batches_leave_in_slices(cluster: Any) -> None:
    async with make(cluster, replication_factor=1, timeout=10.0) as cache:
        items = {f"k{i}": i for i in range(5000)}
        await cache.set_many(items)
        assert await cache.get_many(list(items)) == items
        nodes = cache.stats().nodes.values()
        assert sum(n.ops for n in nodes) == 10000
        assert all(n.round_trips >= n.ops / 1024 for n in nodes)


async def test_a_client_reads_its_own_writes_with_single_replica_quorums(cluster: Any) -> None:
    async with make(cluster, replication_factor=2, read_repair_chance=0.0) as cache:
        stale: list[tuple[str, int, Any]] = []

        async def worker(w: int) -> None:
            for i in range(40):
                key = f"rw{w % 10}:{w}"
                await cache.set(key, i)
                got = await cache.get(key)
                if got != i:
                    stale.append((key, i, got))

        await asyncio.gather(*(worker(w) for w in range(20)))
        assert stale == []


async def test_resync_fills_missing_older_and_garbage_copies_only(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=3) as cache:
        await cache.set_many({"missing": 1, "older": 2, "same": 3, "garbage": 4})
        await cache.set("expiring", 5, ttl=60)
        target = cache._by_name[cache.nodes[0]]
        raw = raw_clients[0]
        await raw.delete(b"mtaio:missing")
        await raw.set(b"mtaio:older", pack_envelope(KIND_VALUE, 1, 1, 0, b"0"))
        await raw.set(b"mtaio:garbage", b"not an envelope")
        for c in raw_clients[1:]:
            await c.set(b"mtaio:foreign", b"someone else's bytes")
            # a copy already past its expiry is not worth copying
            await c.set(b"mtaio:expired", pack_envelope(KIND_VALUE, now_version(), 1, 1000, b"0"))
        same_before = await raw_get(raw, b"mtaio:same")
        await cache._resync(target)
        await asyncio.sleep(0.05)
        for key, value in (("missing", b"1"), ("older", b"2"), ("garbage", b"4")):
            assert unpack_envelope(await raw_get(raw, f"mtaio:{key}".encode())).payload == value
        assert await raw.get(b"mtaio:same") == same_before
        assert await raw.get(b"mtaio:foreign") is None
        assert await raw.get(b"mtaio:expired") is None
        assert cache.stats().resyncs == 1
