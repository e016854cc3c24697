"""get_or_set (single flight, leases, refresh-ahead) and tags, on CacheNode and redis-server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.cache import DistributedCache
from mtaio.cache._envelope import KIND_TAGGED, unpack_envelope
from mtaio.exceptions import CacheConnectionError, ConfigurationError, ConfigurationTypeError


def make(cluster: Any, **kw: Any) -> DistributedCache[Any]:
    kw.setdefault("timeout", 0.5)
    kw.setdefault("read_repair_chance", 0.0)
    return DistributedCache[Any](cluster.addresses, **kw)


# -- get_or_set ------------------------------------------------------------------------------


@pytest.mark.parametrize("cross", [True, False])
async def test_concurrent_misses_load_once(cluster: Any, cross: bool) -> None:
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "v"

    async with make(cluster, replication_factor=2, cross_process=cross) as cache:
        values = await asyncio.gather(*(cache.get_or_set("k", load, ttl=60) for _ in range(50)))
        assert values == ["v"] * 50 and calls == 1
        assert await cache.get_or_set("k", load) == "v" and calls == 1  # a hit now
        assert await cache.get_or_set("s", lambda: 5) == 5  # a sync factory
        stats = cache.stats()
        assert stats.loads == 2 and stats.load_errors == 0


async def test_two_caches_share_one_load_through_the_lease(cluster: Any) -> None:
    """Two caches stand in for two processes: one loads, the other is notified."""
    calls: list[str] = []
    started = asyncio.Event()

    def loader(name: str) -> Any:
        async def load() -> str:
            calls.append(name)
            started.set()
            await asyncio.sleep(0.2)
            return name

        return load

    async with make(cluster, replication_factor=2) as a, make(cluster, replication_factor=2) as b:
        first = asyncio.ensure_future(a.get_or_set("cold", loader("a")))
        await started.wait()
        begin = time.monotonic()
        assert await b.get_or_set("cold", loader("b")) == "a"
        waited = time.monotonic() - begin
        assert await first == "a"
        assert calls == ["a"]
        assert b.stats().load_waits == 1 and b.stats().loads == 0
        # notified, not found by the 1 s back-off: well before a re-check would have seen it
        assert waited < 0.6


async def test_a_failed_load_frees_the_lease_for_the_next_process(cluster: Any) -> None:
    started = asyncio.Event()

    async def failing() -> str:
        started.set()
        await asyncio.sleep(0.1)
        raise RuntimeError("backend down")

    async with make(cluster) as a, make(cluster) as b:
        first = asyncio.ensure_future(a.get_or_set("k", failing))
        await started.wait()
        assert await b.get_or_set("k", lambda: "from b") == "from b"
        with pytest.raises(RuntimeError, match="backend down"):
            await first
        assert a.stats().load_errors == 1


async def test_a_holder_that_never_releases_delays_the_others_by_the_lease_time(
    cluster: Any,
) -> None:
    async with make(cluster, lease_time=0.5) as a, make(cluster, lease_time=0.5) as b:
        hang = asyncio.Event()
        started = asyncio.Event()

        async def stuck() -> str:
            started.set()
            await hang.wait()
            return "never"

        holder = asyncio.ensure_future(a.get_or_set("k", stuck))
        await started.wait()
        # simulate the holder's death: its lease stays until it expires
        a._flights.flights.clear()
        if cluster.kind == "node":  # CacheNode expires keys on the cluster's manual clock
            asyncio.get_running_loop().call_later(0.5, cluster.clock.advance, 1.0)
        begin = time.monotonic()
        assert await b.get_or_set("k", lambda: "b") == "b"
        assert 0.3 < time.monotonic() - begin < 1.5
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder


async def test_cancelled_waiters_leave_the_load_to_the_others(cluster: Any) -> None:
    release = asyncio.Event()
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 7

    async with make(cluster, cross_process=False) as cache:
        one = asyncio.ensure_future(cache.get_or_set("k", load))
        two = asyncio.ensure_future(cache.get_or_set("k", load))
        await asyncio.sleep(0.05)
        one.cancel()
        await asyncio.sleep(0)
        release.set()
        assert await two == 7 and calls == 1
        # the last waiter gone: the load is cancelled, nothing stored
        release.clear()
        lone = asyncio.ensure_future(cache.get_or_set("other", load))
        await asyncio.sleep(0.05)
        lone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lone
        await asyncio.sleep(0.02)
        assert await cache.get("other") is None and not cache._flights.flights


async def test_close_during_a_load_is_a_connection_error(cluster: Any) -> None:
    cache = make(cluster, cross_process=False)
    never = asyncio.Event()
    pending = asyncio.ensure_future(cache.get_or_set("k", never.wait))
    await asyncio.sleep(0.05)
    await cache.close()
    with pytest.raises(CacheConnectionError, match="closed"):
        await pending


async def test_refresh_ahead_reloads_in_the_background_once(cluster: Any) -> None:
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        return calls

    async with make(cluster) as a, make(cluster) as b:
        assert await a.get_or_set("k", load, ttl=10) == 1
        # 10 s left, refresh from 20 s before expiry: every hit is in the window
        hits = await asyncio.gather(
            a.get_or_set("k", load, ttl=10, refresh_ahead=20),
            b.get_or_set("k", load, ttl=10, refresh_ahead=20),
        )
        assert list(hits) == [1, 1]  # the old value is served meanwhile
        for _ in range(100):
            if await a.get("k") == 2:
                break
            await asyncio.sleep(0.01)
        assert await a.get("k") == 2
        await asyncio.sleep(0.05)
        assert calls == 2  # one refresh for both "processes"


async def test_get_or_set_validates_its_arguments(cluster: Any) -> None:
    async with make(cluster) as cache:
        with pytest.raises(ConfigurationError, match="refresh_ahead"):
            await cache.get_or_set("k", lambda: 1, refresh_ahead=0)
        with pytest.raises(ConfigurationTypeError, match="cross_process"):
            await cache.get_or_set("k", lambda: 1, cross_process=1)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationTypeError, match="ttl"):
            await cache.get_or_set("k", lambda: 1, ttl=True)
    with pytest.raises(ConfigurationTypeError, match="cross_process"):
        make(cluster, cross_process="yes")
    with pytest.raises(ConfigurationError, match="lease_time"):
        make(cluster, lease_time=0)


# -- tags ------------------------------------------------------------------------------------


async def test_invalidating_a_tag_misses_its_values_in_every_cache(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=2) as a, make(cluster, replication_factor=2) as b:
        await a.set("u7", "ada", tags=("user:7", "org:3"))
        await a.set_many({"u8": "bob", "u9": "cy"}, tags=["org:3"])
        await a.set("plain", 1)
        assert await b.get_many(["u7", "u8", "u9", "plain"]) == {
            "u7": "ada",
            "u8": "bob",
            "u9": "cy",
            "plain": 1,
        }
        rkey = b"mtaio:u7"
        where = [i for i, c in enumerate(raw_clients) if await c.get(rkey) is not None]
        stored = await raw_clients[where[0]].get(rkey)
        assert isinstance(stored, bytes)
        env = unpack_envelope(stored)
        assert env.kind == KIND_TAGGED and [t for t, _ in env.tags] == ["user:7", "org:3"]

        await b.invalidate_tags("user:7")
        assert await a.get("u7") is None and not await a.has("u7")
        assert await a.get_many(["u7", "u8"]) == {"u8": "bob"}
        assert not await a.touch("u7", ttl=5)
        await b.invalidate_tags("org:3")
        assert await a.get_many(["u7", "u8", "u9", "plain"]) == {"plain": 1}
        # written again after the invalidation: live again
        await a.set("u8", "bob2", tags=("org:3",))
        assert await b.get("u8") == "bob2"
        assert await b.touch("u8", ttl=30) and await b.get("u8") == "bob2"
        assert await a.get_or_set("u9", lambda: "cy2", ttl=30) == "cy2"
        await b.invalidate_tags()  # nothing to do


async def test_invalidating_a_big_tag_takes_one_write(cluster: Any) -> None:
    async with make(cluster, replication_factor=1, timeout=10.0) as cache:
        await cache.set_many({f"m{i}": i for i in range(5000)}, ttl=600, tags=("big",))
        assert len(await cache.get_many([f"m{i}" for i in range(0, 5000, 50)])) == 100
        before = sum(n.ops for n in cache.stats().nodes.values())
        await cache.invalidate_tags("big")
        assert sum(n.ops for n in cache.stats().nodes.values()) - before == 1
        assert await cache.get_many([f"m{i}" for i in range(5000)]) == {}


async def test_a_lost_tag_token_makes_its_values_misses_not_stale_hits(
    cluster: Any, raw_clients: list[aioredis.Redis]
) -> None:
    async with make(cluster, replication_factor=3, write_quorum=3) as cache:
        await cache.set("k", 1, tags=("t",))
        assert await cache.get("k") == 1
        for c in raw_clients:
            await c.delete(b"mtaio:\xfftag:t")  # evicted, or every replica lost it
        assert await cache.get("k") is None


async def test_tags_are_validated(cluster: Any) -> None:
    async with make(cluster) as cache:
        with pytest.raises(ConfigurationTypeError, match="tags must be an iterable"):
            await cache.set("k", 1, tags="user:7")
        with pytest.raises(ConfigurationTypeError, match="each tag must be a str"):
            await cache.set("k", 1, tags=(7,))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="non-empty"):
            await cache.invalidate_tags("")
        with pytest.raises(ConfigurationTypeError, match="iterable of str"):
            await cache.set("k", 1, tags=5)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="at most 1024 tags, got 1025"):
            await cache.set("k", 1, tags=[f"t{i}" for i in range(1025)])
        with pytest.raises(ConfigurationError, match="at most 1024 bytes"):
            await cache.set("k", 1, tags=["x" * 1025])


@pytest.mark.redis
async def test_waiters_survive_a_lost_notification_connection(redis_process: Any) -> None:
    proc = redis_process()
    raw = aioredis.Redis(host=proc.host, port=proc.port, protocol=2)
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "late"

    kw: dict[str, Any] = {"replication_factor": 1, "timeout": 0.5}
    try:
        async with (
            DistributedCache[str]([proc.address], **kw) as a,
            DistributedCache[str]([proc.address], **kw) as b,
        ):
            first = asyncio.ensure_future(a.get_or_set("k", slow))
            await started.wait()
            waiter = asyncio.ensure_future(b.get_or_set("k", lambda: "b"))
            for _ in range(100):  # until b listens
                if await raw.pubsub_numsub(b"mtaio:\xffloaded") != [(b"mtaio:\xffloaded", 0)]:
                    break
                await asyncio.sleep(0.01)
            await raw.client_kill_filter(_type="pubsub")
            await asyncio.sleep(0.05)
            release.set()
            assert await asyncio.wait_for(waiter, 3.0) == "late"  # found by its re-check
            assert await first == "late"
    finally:
        await raw.aclose()
