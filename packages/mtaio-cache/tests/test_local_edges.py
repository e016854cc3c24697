"""Edge paths: expired victims, listeners on every path, loads racing writes, new loops."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

import pytest

from mtaio.cache import EvictionReason, TTLCache
from mtaio.exceptions import ConfigurationTypeError
from mtaio.typing import ManualClock

Log = list[tuple[Hashable, Any, EvictionReason]]


def logged(clock: ManualClock, **kwargs: Any) -> tuple[TTLCache[int], Log]:
    log: Log = []
    cache = TTLCache[int](clock=clock, on_removed=lambda *a: log.append(a), **kwargs)
    return cache, log


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu"])
async def test_expired_victim_counts_as_expiration(clock: ManualClock, policy: str) -> None:
    cache, log = logged(clock, default_ttl=5.0, max_size=2, eviction_policy=policy)
    await cache.set("a", 1)
    clock.advance(3.0)
    await cache.set("b", 2)
    clock.advance(2.0)  # "a" has expired, nobody purged it
    await cache.set("c", 3)
    assert log == [("a", 1, EvictionReason.EXPIRED)]
    stats = cache.stats()
    assert (stats.expirations, stats.evictions) == (1, 0)
    assert cache.keys() == ["b", "c"]


async def test_listeners_hear_expiry_on_every_read_path(clock: ManualClock) -> None:
    cache, log = logged(clock, default_ttl=1.0)
    await cache.set_many({"a": 1, "b": 2, "c": 3, "d": 4})
    clock.advance(1.0)
    assert not await cache.has("a")
    assert await cache.ttl("b") is None
    assert await cache.delete("c") is False
    assert await cache.get_or_set("d", lambda: 40) == 40
    assert [(k, r) for k, _, r in log] == [(k, EvictionReason.EXPIRED) for k in "abcd"]


async def test_delete_many_and_touch_with_listeners(clock: ManualClock) -> None:
    cache, log = logged(clock, default_ttl=10.0)
    await cache.set_many({"a": 1, "b": 2})
    assert await cache.delete_many(["a", "b", "c"]) == 2
    assert [r for _, _, r in log] == [EvictionReason.DELETED] * 2
    await cache.set("e", 5, ttl=1.0)
    clock.advance(1.0)
    assert await cache.touch("e") is False
    assert log[-1] == ("e", 5, EvictionReason.EXPIRED)


async def test_get_or_set_hit_counts_a_use_for_lfu(clock: ManualClock) -> None:
    cache = TTLCache[int](max_size=2, eviction_policy="lfu", clock=clock)
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert await cache.get_or_set("a", lambda: 0) == 1  # "a" used twice now
    await cache.set("c", 3)
    assert cache.keys() == ["c", "a"]


async def test_load_stores_with_listener_and_evicts(clock: ManualClock) -> None:
    cache, log = logged(clock, max_size=1)
    await cache.set("a", 1)
    assert await cache.get_or_set("b", lambda: 2) == 2
    assert log == [("a", 1, EvictionReason.CAPACITY)]


@pytest.mark.parametrize("existing", [True, False])
async def test_set_many_during_load_keeps_result_out(clock: ManualClock, existing: bool) -> None:
    cache = TTLCache[int](clock=clock)
    if existing:
        await cache.set("k", 0, ttl=100.0)
        await cache.delete("k")
    release = asyncio.Event()

    async def load() -> int:
        await release.wait()
        return 1

    waiter = asyncio.create_task(cache.get_or_set("k", load))
    await asyncio.sleep(0)
    await cache.set_many({"k": 2}, ttl=50.0)
    await cache.set_many({"k": 3}, ttl=50.0)  # an overwrite, still during the load
    release.set()
    assert await waiter == 1
    assert await cache.get("k") == 3


async def test_set_many_rejects_unhashable_key(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    bad: Any = ["x"]

    class Pairs(dict[Any, int]):
        def items(self) -> Any:
            return [(bad, 1)]

    with pytest.raises(ConfigurationTypeError, match="hashable"):
        await cache.set_many(Pairs())
    assert cache.keys() == []


def test_touch_and_transaction_start_the_cleanup_on_a_new_loop() -> None:
    clock = ManualClock()
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    asyncio.run(cache.set("a", 1))

    async def touch_then_commit() -> None:
        assert await cache.touch("a")
        assert cache._timer is not None
        await cache.close()
        async with cache.transaction() as tx:
            await tx.set("b", 2)
        assert cache._timer is not None
        await cache.close()

    asyncio.run(touch_then_commit())
    assert cache.peek("b") == 2
