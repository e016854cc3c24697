"""Bytes from a node are untrusted: planted versions, moved signatures, corrupt replicas.

Each test plants what an attacker with write access to a node could, through a raw client,
against CacheNode and redis-server clusters (``cluster``, conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.cache import CacheSerializationError, DistributedCache, SignedPickleSerializer
from mtaio.cache._envelope import (
    HEADER_SIZE,
    KIND_VALUE,
    HybridClock,
    pack_envelope,
    pack_header,
    unpack_envelope,
)
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

KEY = b"0123456789abcdef0123456789abcdef"
TOP = (1 << 64) - 1


def make(cluster: Any, **kw: Any) -> DistributedCache[Any]:
    kw.setdefault("timeout", 0.5)
    kw.setdefault("read_repair_chance", 0.0)
    return DistributedCache[Any](cluster.addresses, **kw)


def wall_version(offset_s: float = 0.0) -> int:
    return int((time.time() + offset_s) * 1000) << 16


async def raw_env(client: aioredis.Redis, rkey: bytes) -> Any:
    value = await client.get(rkey)
    assert isinstance(value, bytes)
    return unpack_envelope(value)


async def eventually(check: Any, limit: float = 3.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- item 7: clock poisoning -----------------------------------------------------------------


def test_hybrid_clock_refuses_versions_beyond_the_drift() -> None:
    wall = [1000.0]
    clock = HybridClock(max_drift_ms=60_000, wall=lambda: wall[0])
    first = clock.now()
    assert first == 1_000_000 << 16
    assert clock.now() == first + 1  # same millisecond: the counter moves
    ahead = (1_000_000 + 30_000) << 16
    assert clock.observe(ahead)  # 30 s ahead, within the drift: the clock follows
    assert clock.now() == ahead + 1
    assert not clock.observe((1_000_000 + 61_000) << 16)  # beyond: refused
    assert not clock.observe(TOP)
    assert clock.last == ahead + 1  # unchanged by the refused ones
    assert clock.observe(5)  # an old version never moves it back
    wall[0] = 2000.0
    assert clock.now() == 2_000_000 << 16


async def test_a_planted_far_future_version_does_not_poison_writes(
    cluster: Any, raw_clients: list[aioredis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    planted = pack_envelope(KIND_VALUE, TOP, 1, 0, b'"planted"')
    for c in raw_clients:
        await c.set(b"mtaio:poison", planted)
    async with make(cluster, replication_factor=2, write_quorum=2) as cache:
        with (
            caplog.at_level(logging.WARNING, logger="mtaio.cache"),
            pytest.raises(CacheSerializationError, match="max_clock_drift"),
        ):
            await cache.get("poison")
        assert cache.stats().clock_anomalies >= 1
        assert any("ahead of this clock" in r.getMessage() for r in caplog.records)
        # every later write works, with versions from the real clock
        await cache.set("other", 1)
        assert await cache.delete("other") is True
        await cache.set("poison", "mine")
        assert await cache.get("poison") == "mine"
        for i in [cache.nodes.index(name) for name in cache.replicas("poison")]:
            env = await raw_env(raw_clients[i], b"mtaio:poison")
            assert env.version < wall_version(60)


async def test_read_repair_does_not_spread_a_planted_version(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=3, read_quorum=3, write_quorum=3) as cache:
        await cache.set("k", "good")
        await raw_clients[0].set(b"mtaio:k", pack_envelope(KIND_VALUE, TOP, 1, 0, b'"evil"'))
        assert await cache.get("k") == "good"
        # the planted copy is overwritten with the good one; nobody else got the planted one
        await eventually(
            lambda: _payload_is(raw_clients[0], b"mtaio:k", b'"good"'),
        )
        for c in raw_clients[1:]:
            assert (await raw_env(c, b"mtaio:k")).payload == b'"good"'
        assert cache.stats().clock_anomalies == 1
        assert cache.stats().corrupt_replicas == 1


async def test_a_version_within_the_drift_moves_the_clock(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    ahead = wall_version(20)
    for c in raw_clients:
        await c.set(b"mtaio:k", pack_envelope(KIND_VALUE, ahead, 1, 0, b'"theirs"'))
    async with make(cluster, replication_factor=3, write_quorum=3, max_clock_drift=30) as cache:
        assert await cache.get("k") == "theirs"
        await cache.set("k", "ours")  # orders after what it read
        assert (await raw_env(raw_clients[0], b"mtaio:k")).version > ahead
        assert cache.stats().clock_anomalies == 0


async def _payload_is(client: aioredis.Redis, rkey: bytes, payload: bytes) -> bool:
    raw = await client.get(rkey)
    return isinstance(raw, bytes) and unpack_envelope(raw).payload == payload


async def holders(raw: list[aioredis.Redis], rkey: bytes) -> list[int]:
    return [i for i, c in enumerate(raw) if await c.get(rkey) is not None]


# -- item 8: a signature bound to its key, namespace and header --------------------------


def test_signed_pickle_verifies_only_in_its_context() -> None:
    s = SignedPickleSerializer(KEY)
    data = s.dumps({"role": "admin"}, context=b"user:1")
    assert s.loads(data, context=b"user:1") == {"role": "admin"}
    with pytest.raises(CacheSerializationError, match="does not verify"):
        s.loads(data, context=b"user:2")
    with pytest.raises(CacheSerializationError, match="does not verify"):
        s.loads(data)


async def test_a_signed_value_moved_to_another_key_is_refused(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(
        cluster, replication_factor=3, write_quorum=3, serializer=SignedPickleSerializer(KEY)
    ) as cache:
        await cache.set("user:1:role", "admin")
        await cache.set("user:2:role", "guest")
        stolen = await raw_clients[0].get(b"mtaio:user:1:role")
        assert isinstance(stolen, bytes)
        for c in raw_clients:
            await c.set(b"mtaio:user:2:role", stolen)
        with pytest.raises(CacheSerializationError, match="does not verify"):
            await cache.get("user:2:role")
    # the same bytes under the same key of another namespace
    for c in raw_clients:
        await c.set(b"other:user:1:role", stolen)
    async with make(
        cluster, replication_factor=3, namespace="other", serializer=SignedPickleSerializer(KEY)
    ) as other:
        with pytest.raises(CacheSerializationError, match="does not verify"):
            await other.get("user:1:role")


async def test_a_signed_value_replayed_with_another_header_is_refused(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(
        cluster, replication_factor=3, write_quorum=3, serializer=SignedPickleSerializer(KEY)
    ) as cache:
        await cache.set("session", {"user": 7}, ttl=60)
        env = await raw_env(raw_clients[0], b"mtaio:session")
        assert await cache.get("session") == {"user": 7}
        # the same payload made newer (to win every read) and never expiring
        forged = pack_header(KIND_VALUE, env.version + 1, env.writer, 0) + env.payload
        for c in raw_clients:
            await c.set(b"mtaio:session", forged)
        with pytest.raises(CacheSerializationError, match="does not verify"):
            await cache.get("session")
        # touch re-signs under the new header, so the value keeps verifying
        await cache.set("session", {"user": 8}, ttl=60)
        assert await cache.touch("session", ttl=120)
        assert await cache.get("session") == {"user": 8}
        assert len((await raw_clients[0].get(b"mtaio:session")) or b"") > HEADER_SIZE


# -- item 9: corrupt replicas ----------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"not an envelope",
        pack_envelope(KIND_VALUE, 1, 1, 0, b"{not json"),
        pack_envelope(KIND_VALUE, 1, 1, 0, b"[" * 100_000 + b"]" * 100_000),
    ],
    ids=["foreign", "bad-json", "deep-nesting"],
)
async def test_a_corrupt_first_replica_is_skipped_and_repaired(
    cluster: Any, raw_clients: list[aioredis.Redis], garbage: bytes
) -> None:
    async with make(cluster, replication_factor=2) as cache:
        await cache.set("k", {"ok": True})
        first = cache.nodes.index(cache.replicas("k")[0])
        await raw_clients[first].set(b"mtaio:k", garbage)
        assert await cache.get("k") == {"ok": True}
        assert await cache.get_many(["k"]) == {"k": {"ok": True}}
        assert cache.stats().corrupt_replicas >= 1
        await eventually(lambda: _payload_is(raw_clients[first], b"mtaio:k", b'{"ok":true}'))
        assert cache.stats().repairs >= 1


async def test_deep_nesting_on_every_replica_is_a_serialization_error(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    deep = pack_envelope(KIND_VALUE, 1, 1, 0, b"[" * 100_000 + b"]" * 100_000)
    for c in raw_clients:
        await c.set(b"mtaio:deep", deep)
    async with make(cluster, replication_factor=3) as cache:
        with pytest.raises(CacheSerializationError, match="nested too deeply"):
            await cache.get("deep")
    async with make(cluster, replication_factor=3, read_quorum=2) as cache:
        with pytest.raises(CacheSerializationError, match="nested too deeply"):
            await cache.get("deep")


async def test_quorum_reads_skip_a_newest_copy_that_does_not_decode(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=3, read_quorum=3, write_quorum=3) as cache:
        await cache.set("k", "good")
        env = await raw_env(raw_clients[0], b"mtaio:k")
        await raw_clients[1].set(
            b"mtaio:k", pack_envelope(KIND_VALUE, env.version + 1, env.writer, 0, b"{bad")
        )
        assert await cache.get("k") == "good"
        await eventually(lambda: _payload_is(raw_clients[1], b"mtaio:k", b'"good"'))


class Fragile:
    """A user serializer whose decoder fails with an arbitrary exception."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        if data == b'"boom"':
            raise KeyError("boom")
        return json.loads(data)


async def test_any_decoder_error_becomes_a_serialization_error(cluster: Any) -> None:
    async with make(cluster, replication_factor=1, serializer=Fragile()) as cache:
        await cache.set("k", "boom")
        with pytest.raises(CacheSerializationError, match="KeyError"):
            await cache.get("k")


# -- item 12: TTLs ---------------------------------------------------------------------------


async def test_inf_ttl_never_expires_and_true_is_refused(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=3) as cache:
        await cache.set("forever", 1, ttl=math.inf)
        await cache.set_many({"many": 2}, ttl=math.inf)
        for c in raw_clients:
            assert await c.pttl(b"mtaio:forever") == -1
            assert await c.pttl(b"mtaio:many") == -1
        assert (await raw_env(raw_clients[0], b"mtaio:forever")).expires_at == 0
        assert await cache.touch("forever", ttl=math.inf)
        with pytest.raises(ConfigurationTypeError, match="ttl"):
            await cache.set("k", 1, ttl=True)
        with pytest.raises(ConfigurationError, match="ttl"):
            await cache.set("k", 1, ttl=math.nan)
        with pytest.raises(ConfigurationError, match=r"math\.inf"):
            await cache.set("k", 1, ttl=1e300)
    async with make(cluster, replication_factor=1, default_ttl=math.inf) as cache:
        await cache.set("d", 1)
        where = await holders(raw_clients, b"mtaio:d")
        assert await raw_clients[where[0]].pttl(b"mtaio:d") == -1
    with pytest.raises(ConfigurationTypeError, match="default_ttl"):
        make(cluster, default_ttl=True)
    with pytest.raises(ConfigurationError, match="max_clock_drift"):
        make(cluster, max_clock_drift=0)
