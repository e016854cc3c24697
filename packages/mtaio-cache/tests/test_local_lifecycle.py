"""Background cleanup, close, async with, transactions, jitter, stats, the policy classes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

import pytest

from mtaio.cache import (
    CacheStats,
    EvictionPolicy,
    EvictionReason,
    TTLCache,
    TTLFIFOCache,
    TTLLFUCache,
    TTLLRUCache,
)
from mtaio.exceptions import CacheError, ConfigurationError, ConfigurationTypeError
from mtaio.typing import ManualClock

T = TypeVar("T")


@pytest.mark.looptime
async def test_background_cleanup_purges_without_access() -> None:
    loop = asyncio.get_running_loop()
    log: list[Hashable] = []
    cache = TTLCache[int](
        default_ttl=1.0,
        cleanup_interval=5.0,
        clock=loop.time,
        on_removed=lambda k, v, r: log.append(k),
    )
    await cache.set_many({i: i for i in range(100)})
    await cache.set("long", 1, ttl=100.0)
    assert cache.stats().items == 101
    await asyncio.sleep(5.5)
    assert cache.stats().items == 1  # purged by the cleanup, no one asked
    assert sorted(log) == list(range(100))  # type: ignore[type-var]
    assert cache.stats().expirations == 100
    await cache.close()


@pytest.mark.looptime
async def test_close_stops_the_cleanup_and_it_restarts_on_use() -> None:
    loop = asyncio.get_running_loop()
    cache = TTLCache[int](default_ttl=1.0, cleanup_interval=5.0, clock=loop.time)
    await cache.set("a", 1)
    await cache.close()
    await asyncio.sleep(20.0)
    assert cache.stats().items == 1  # nothing ran after close
    await cache.set("b", 2)  # the next write starts it again
    await asyncio.sleep(6.0)
    assert cache.stats().items == 0
    await cache.close()
    await cache.close()  # twice is harmless


@pytest.mark.looptime
async def test_async_with_starts_and_stops() -> None:
    loop = asyncio.get_running_loop()
    async with TTLCache[int](default_ttl=1.0, cleanup_interval=2.0, clock=loop.time) as cache:
        await cache.set("a", 1)
        await asyncio.sleep(3.0)
        assert cache.stats().items == 0
        await cache.set("b", 2)
    await asyncio.sleep(10.0)
    assert cache.stats().items == 1
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_async_listener_from_the_cleanup_runs_as_a_task() -> None:
    loop = asyncio.get_running_loop()
    seen: list[Hashable] = []

    async def listener(key: Hashable, value: int, reason: EvictionReason) -> None:
        await asyncio.sleep(0.1)
        seen.append(key)

    cache = TTLCache[int](default_ttl=1.0, cleanup_interval=2.0, clock=loop.time)
    cache.add_listener(listener)
    await cache.set("a", 1)
    await asyncio.sleep(3.0)
    assert seen == ["a"]
    await cache.close()


def test_cleanup_follows_the_cache_to_a_new_loop() -> None:
    clock = ManualClock()
    cache = TTLCache[int](default_ttl=1.0, cleanup_interval=0.01, clock=clock)

    async def write_then_wait() -> int:
        # Writes look for the cleanup's loop once two intervals passed without a firing.
        clock.advance(1.0)
        await cache.set("a", 1)
        clock.advance(2.0)
        await asyncio.sleep(0.05)  # real time: the timer fires on this loop
        return cache.stats().items

    assert asyncio.run(write_then_wait()) == 0
    assert asyncio.run(write_then_wait()) == 0  # a second loop gets its own timer
    asyncio.run(cache.close())


def test_forgotten_cache_is_collected_despite_its_timer() -> None:
    async def main() -> weakref.ref[TTLCache[int]]:
        cache = TTLCache[int](cleanup_interval=1.0)
        await cache.set("a", 1)
        ref = weakref.ref(cache)
        del cache
        gc.collect()
        await asyncio.sleep(0)
        return ref

    assert asyncio.run(main())() is None


async def test_transaction_applies_together(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    await cache.set("a", 1)
    async with cache.transaction() as tx:
        value = await tx.get("a", 0)
        assert await tx.delete("a") is True
        assert await tx.get("a") is None
        await tx.set("b", value + 1, ttl=5.0)
        assert await tx.get("b") == 2
        assert await tx.delete("b") is True
        await tx.set("b", value + 2, ttl=5.0)
        assert await tx.delete("never") is False
        assert await cache.get("a") == 1  # nothing applied yet
        assert await cache.get("b") is None
    assert await cache.get("a") is None
    assert await cache.get("b") == 3
    assert await cache.ttl("b") == pytest.approx(5.0)


async def test_transaction_discarded_on_error(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    await cache.set("a", 1)

    async def abort() -> None:
        async with cache.transaction() as tx:
            await tx.set("a", 100)
            await tx.set("b", 2)
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await abort()
    assert await cache.get("a") == 1
    assert await cache.get("b") is None


async def test_transaction_listeners_and_reuse(clock: ManualClock) -> None:
    log: list[tuple[Hashable, Any, EvictionReason]] = []
    cache = TTLCache[int](clock=clock, on_removed=lambda *a: log.append(a))
    await cache.set("a", 1)
    tx = cache.transaction()
    async with tx:
        await tx.set("a", 2)
        await tx.delete("z")
    assert log == [("a", 1, EvictionReason.REPLACED)]
    with pytest.raises(CacheError, match="already"):
        await tx.set("a", 3)
    with pytest.raises(CacheError, match="already"):
        async with tx:
            pass  # pragma: no cover
    async with cache.transaction():
        pass  # an empty transaction applies nothing


async def test_transaction_validates(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    bad: Any = {}
    async with cache.transaction() as tx:
        with pytest.raises(ConfigurationError, match="ttl"):
            await tx.set("a", 1, ttl=-1)
        with pytest.raises(ConfigurationTypeError, match="key"):
            await tx.set(bad, 1)
        with pytest.raises(ConfigurationTypeError, match="key"):
            await tx.get(bad)
        with pytest.raises(ConfigurationTypeError, match="key"):
            await tx.delete(bad)


async def test_jitter_shortens_ttl_within_bounds(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=100.0, jitter=0.2, clock=clock)
    await cache.set_many({i: i for i in range(200)})
    lefts = [await cache.ttl(i) for i in range(200)]
    assert all(left is not None and 80.0 <= left <= 100.0 for left in lefts)
    assert len(set(lefts)) > 100  # they are spread out


async def test_stats(clock: ManualClock) -> None:
    cache = TTLCache[int](max_size=1, default_ttl=1.0, clock=clock)
    assert cache.stats() == CacheStats(max_size=1)
    assert cache.stats().hit_rate == 0.0
    await cache.set("a", 1)
    await cache.get("a")
    await cache.get("a")
    await cache.get("x")
    await cache.set("b", 2)
    clock.advance(1.0)
    await cache.get("b")
    stats = cache.get_stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.expirations) == (2, 2, 1, 1)
    assert stats.hit_rate == 0.5
    assert stats.requests == 4
    assert stats.items == 0
    cache.reset_stats()
    assert cache.stats() == CacheStats(max_size=1)


@pytest.mark.parametrize(
    ("cls", "policy"),
    [
        (TTLLRUCache, EvictionPolicy.LRU),
        (TTLLFUCache, EvictionPolicy.LFU),
        (TTLFIFOCache, EvictionPolicy.FIFO),
    ],
)
async def test_policy_classes(cls: type[TTLCache[int]], policy: EvictionPolicy) -> None:
    seen: list[Hashable] = []
    cache = cls(max_size=2, on_evicted=lambda k, v: seen.append(k))
    assert cache.eviction_policy is policy
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.get("a")
    await cache.get("a")
    await cache.set("c", 3)
    assert seen == (["a"] if policy is EvictionPolicy.FIFO else ["b"])


def test_policy_names() -> None:
    assert EvictionPolicy.parse("LRU") is EvictionPolicy.LRU
    assert EvictionPolicy.parse(EvictionPolicy.FIFO) is EvictionPolicy.FIFO


class Layered(Generic[T]):
    """The shape of the guide's LayeredCache: a TTLCache[T] built inside a generic class."""

    def __init__(self) -> None:
        self.local = TTLCache[T](default_ttl=60.0)

    async def get(self, key: str) -> T | None:
        return await self.local.get(key)


async def test_guide_layered_use_generic_ttl_cache() -> None:
    layered = Layered[dict[str, int]]()
    assert await layered.get("k") is None
    await layered.local.set("k", {"x": 1})
    assert await layered.get("k") == {"x": 1}
    await layered.local.close()


async def test_guide_invalidation_use() -> None:
    cache = TTLCache[str]()  # default ttl, no close: the guide never closes it
    await cache.set("user:1", "alice")
    for key in ["user:1", "user:2"]:
        await cache.delete(key)  # the second is missing: not an error
    await cache.set("user:3", "bob")
    await cache.clear()
    assert await cache.get("user:3") is None  # left unclosed, as in the guide: no warning
