"""Memory follows the live entries: expiry bookkeeping leaves with the entries it tracked.

Issue 14 item 5: a key rewritten with ever new expiry seconds (what a remote ``SET k v EX n``
loop does to a CacheNode) used to leave one empty expiry bucket and one heap slot behind per
second, until that second passed: +154 MiB for 1M rewrites. These tests measure the memory
the cache holds with tracemalloc, not its private structures.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Awaitable, Callable

import pytest

from mtaio.cache import EvictionPolicy, TTLCache
from mtaio.typing import ManualClock

REWRITES = 20_000
# Without the fix each rewrite leaves a bucket (an entry-sized sentinel plus a dict and a
# heap slot, about 150 bytes): 20k rewrites hold ~3 MB. With it, what is left is the dict's
# and heap's spare capacity from the peak, well under this bound.
BOUND = 256 * 1024


async def _held_after(run: Callable[[], Awaitable[None]]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await run()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("policy", list(EvictionPolicy))
async def test_rewrites_with_new_ttls_leave_no_buckets_behind(
    clock: ManualClock, policy: EvictionPolicy
) -> None:
    cache = TTLCache[int](
        default_ttl=None, cleanup_interval=None, eviction_policy=policy, clock=clock
    )
    ttls = [1000.0 + i for i in range(REWRITES)]  # built first: not counted

    async def rewrite_one_key() -> None:
        for ttl in ttls:
            await cache.set("k", 1, ttl=ttl)
        assert await cache.get("k") == 1

    held = await _held_after(rewrite_one_key)
    assert held < BOUND, f"one live entry holds {held} bytes after {REWRITES} rewrites"
    assert await cache.delete("k")


async def test_deleted_entries_release_their_buckets(clock: ManualClock) -> None:
    # A dict keeps the table of its largest size and reallocates it as it refills, so the
    # tracing starts before a first fill-and-delete round and the growth is measured over
    # the next rounds, each with new expiry seconds: they must not add up.
    cache = TTLCache[int](default_ttl=None, cleanup_interval=None, clock=clock)
    keys = [f"k{i}" for i in range(REWRITES)]

    async def fill_and_delete(round_: int) -> None:
        for i, key in enumerate(keys):
            await cache.set(key, i, ttl=10.0 + round_ * REWRITES + i)  # one bucket per key
        assert await cache.delete_many(keys) == REWRITES

    gc.collect()
    tracemalloc.start()
    try:
        await fill_and_delete(0)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for round_ in range(1, 4):
            await fill_and_delete(round_)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < BOUND, f"an empty cache grew by {held} bytes over three rounds"
    assert len(cache) == 0


async def test_evicted_entries_release_their_buckets(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=None, max_size=10, cleanup_interval=None, clock=clock)
    keys = [f"k{i}" for i in range(REWRITES)]

    async def churn() -> None:
        for i, key in enumerate(keys):
            await cache.set(key, i, ttl=10.0 + i)

    held = await _held_after(churn)
    assert held < BOUND, f"a cache of 10 entries holds {held} bytes"
    assert len(cache) == 10


async def test_expiry_still_exact_after_buckets_are_dropped(clock: ManualClock) -> None:
    # Dropped buckets leave stale seconds in the heap; the purge skips them and still finds
    # a bucket created again for the same second.
    cache = TTLCache[int](default_ttl=None, cleanup_interval=None, clock=clock)
    for i in range(500):
        await cache.set("a", i, ttl=5.0 + i)  # drops the previous bucket each time
    await cache.set("a", 1, ttl=5.0)  # the first second again, pushed a second time
    await cache.set("b", 2, ttl=5.5)
    await cache.set("c", 3, ttl=50.0)
    clock.advance(5.0)
    assert cache.purge_expired() == 1  # "a", from the current second's bucket
    clock.advance(1.0)
    assert cache.purge_expired() == 1  # "b", a past second's bucket
    assert cache.keys() == ["c"]
    clock.advance(50.0)
    assert cache.purge_expired() == 1
    assert len(cache) == 0
