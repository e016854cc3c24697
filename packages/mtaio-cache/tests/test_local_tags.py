"""TTLCache tags and invalidate_tags; the tag index leaves with its entries; items()."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from mtaio.cache import EvictionReason, TTLCache
from mtaio.exceptions import ConfigurationTypeError
from mtaio.typing import ManualClock


async def test_invalidate_tags_removes_every_member(clock: ManualClock) -> None:
    heard: list[tuple[Any, EvictionReason]] = []
    cache = TTLCache[str](clock=clock, on_removed=lambda k, v, r: heard.append((k, r)))
    await cache.set("u7:name", "Ada", tags=("user:7", "org:3"))
    await cache.set("u7:mail", "ada@x", tags=["user:7"])
    await cache.set("u8:name", "Bob", tags=("user:8", "org:3"))
    await cache.set_many({"o3:a": "1", "o3:b": "2"}, tags=("org:3",))
    await cache.set("plain", "p")
    await cache.invalidate_tags("user:7")
    assert sorted(map(str, cache.keys())) == ["o3:a", "o3:b", "plain", "u8:name"]
    assert sorted(str(k) for k, _ in heard) == ["u7:mail", "u7:name"]
    assert {r for _, r in heard} == {EvictionReason.DELETED}
    await cache.invalidate_tags("org:3", "nobody")
    assert cache.keys() == ["plain"]
    await cache.invalidate_tags()  # nothing asked, nothing done
    assert cache.keys() == ["plain"]


async def test_an_overwrite_replaces_the_tags(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    await cache.set("k", "v1", tags=("a",))
    await cache.set("k", "v2")  # no tags now
    await cache.invalidate_tags("a")
    assert await cache.get("k") == "v2"
    await cache.set("k", "v3", tags=("b",))
    await cache.invalidate_tags("a")
    assert await cache.get("k") == "v3"
    await cache.invalidate_tags("b")
    assert await cache.get("k") is None


async def test_entries_that_left_are_not_invalidated_again(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, max_size=2, clock=clock)
    await cache.set("old", 1, tags=("t",))
    await cache.set("b", 2, tags=("t",))
    await cache.set("c", 3)  # evicts "old"
    await cache.set("old", 4)  # back, untagged
    await cache.invalidate_tags("t")  # "b" only ("old" was evicted with its tag)
    assert sorted(map(str, cache.keys())) == ["c", "old"]
    await cache.set("e", 5, ttl=1.0, tags=("u",))
    clock.advance(2.0)
    assert cache.purge_expired() == 1
    await cache.set("e", 6)
    await cache.invalidate_tags("u")
    assert await cache.get("e") == 6


def _tag_index_size(cache: TTLCache[Any]) -> int:
    return len(cache._tagged) + len(cache._tag_keys)


@pytest.mark.parametrize("how", ["expire", "delete", "evict", "clear", "overwrite"])
async def test_the_tag_index_leaves_with_its_entries(clock: ManualClock, how: str) -> None:
    cache = TTLCache[int](default_ttl=5.0, max_size=100, cleanup_interval=None, clock=clock)
    for i in range(50):
        await cache.set(f"k{i}", i, tags=(f"t{i}", "all"))
    if how == "expire":
        clock.advance(6.0)
        cache.purge_expired()
    elif how == "delete":
        await cache.delete_many([f"k{i}" for i in range(50)])
    elif how == "evict":
        for i in range(100):
            await cache.set(f"other{i}", i)
    elif how == "clear":
        await cache.clear()
    else:
        await cache.set_many({f"k{i}": i for i in range(50)})
    assert _tag_index_size(cache) == 0


async def test_tag_memory_follows_the_live_entries(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=5.0, cleanup_interval=None, clock=clock)
    tags = [(f"tag{i}",) for i in range(5_000)]

    async def round_() -> None:
        for i, tag in enumerate(tags):
            await cache.set(i, i, tags=tag)
        clock.advance(6.0)
        assert cache.purge_expired() == len(tags)

    gc.collect()
    tracemalloc.start()
    try:
        await round_()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            await round_()
        gc.collect()
        grew = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grew < 128 * 1024, f"the tag index grew by {grew} bytes with no live entry"


async def test_bad_tags_are_refused(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    with pytest.raises(ConfigurationTypeError, match="one string"):
        await cache.set("k", 1, tags="abc")
    with pytest.raises(ConfigurationTypeError, match="each tag must be a str"):
        await cache.set("k", 1, tags=(1,))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="iterable"):
        await cache.set("k", 1, tags=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="each tag must be a str"):
        await cache.invalidate_tags(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="one string"):
        await cache.set_many({"k": 1}, tags="abc")
    assert len(cache) == 0


async def test_items_is_a_snapshot_in_key_order(clock: ManualClock) -> None:
    cache = TTLCache[str](default_ttl=10.0, clock=clock)
    await cache.set("a", "1")
    await cache.set("b", "2", ttl=1.0)
    await cache.set("c", "3")
    await cache.get("a")  # LRU: "a" is now the most recent
    clock.advance(2.0)
    items = cache.items()
    assert items == [("c", "3"), ("a", "1")]
    await cache.clear()
    assert items == [("c", "3"), ("a", "1")]
    assert cache.items() == []
    assert cache.stats().hits == 1  # items() counted nothing
