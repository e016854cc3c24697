"""The core TTLCache API: get/set/delete/clear/touch/has/ttl, expiry, bulk operations."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mtaio.cache import TTLCache
from mtaio.exceptions import CacheKeyError, ConfigurationError, ConfigurationTypeError
from mtaio.typing import ManualClock


async def test_set_get_and_default(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    assert await cache.get("missing") is None
    assert await cache.get("missing", "fallback") == "fallback"
    await cache.set("k", "v")
    assert await cache.get("k") == "v"
    assert "k" in cache
    assert len(cache) == 1


async def test_stored_none_is_a_value(clock: ManualClock) -> None:
    cache = TTLCache[str | None](clock=clock)
    await cache.set("k", None)
    assert await cache.has("k")
    assert await cache.get("k", "default") is None


async def test_entry_expires_after_default_ttl(clock: ManualClock) -> None:
    cache = TTLCache[str](default_ttl=60.0, clock=clock)
    await cache.set("k", "v")
    clock.advance(59.9)
    assert await cache.get("k") == "v"
    clock.advance(0.1)
    assert await cache.get("k") is None
    assert "k" not in cache
    assert cache.stats().expirations == 1


async def test_explicit_ttl_overrides_default(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=60.0, clock=clock)
    await cache.set("short", 1, ttl=1.0)
    await cache.set("long", 2, ttl=100.0)
    clock.advance(61.0)
    assert await cache.get("short") is None
    assert await cache.get("long") == 2


async def test_default_ttl_none_means_no_expiry(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=None, clock=clock)
    await cache.set("forever", 1)
    await cache.set("brief", 2, ttl=5.0)
    clock.advance(10_000.0)
    assert await cache.get("forever") == 1
    assert await cache.get("brief") is None
    assert await cache.ttl("forever") == math.inf


async def test_infinite_ttl_never_expires(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=1.0, clock=clock)
    await cache.set("k", 1, ttl=math.inf)
    clock.advance(1e9)
    assert await cache.get("k") == 1


@pytest.mark.parametrize("ttl", [0, 0.0, -1.0, math.nan])
async def test_non_positive_ttl_is_an_error_not_the_default(clock: ManualClock, ttl: float) -> None:
    cache = TTLCache[int](clock=clock)
    with pytest.raises(ConfigurationError, match="ttl"):
        await cache.set("k", 1, ttl=ttl)
    assert "k" not in cache


@pytest.mark.parametrize("ttl", ["1", True])
async def test_ttl_of_the_wrong_type(clock: ManualClock, ttl: object) -> None:
    cache = TTLCache[int](clock=clock)
    with pytest.raises(ConfigurationTypeError, match="ttl"):
        await cache.set("k", 1, ttl=ttl)  # type: ignore[arg-type]


async def test_delete_reports_and_missing_key_is_not_an_error(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    await cache.set("k", "v")
    assert await cache.delete("k") is True
    assert await cache.delete("k") is False
    assert await cache.delete("never") is False
    assert await cache.get("k") is None


async def test_delete_of_expired_entry_returns_false(clock: ManualClock) -> None:
    cache = TTLCache[str](default_ttl=1.0, clock=clock)
    await cache.set("k", "v")
    clock.advance(2.0)
    assert await cache.delete("k") is False
    assert cache.stats().items == 0


async def test_clear_empties(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    await cache.set_many({"a": 1, "b": 2})
    await cache.clear()
    assert len(cache) == 0
    assert await cache.get("a") is None
    await cache.set("c", 3)
    assert cache.keys() == ["c"]


async def test_ttl_reports_remaining_time(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    await cache.set("k", 1)
    clock.advance(4.0)
    assert await cache.ttl("k") == pytest.approx(6.0)
    assert await cache.ttl("missing") is None
    clock.advance(6.0)
    assert await cache.ttl("k") is None


async def test_touch_restarts_life(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    await cache.set("k", 1)
    clock.advance(9.0)
    assert await cache.touch("k") is True
    clock.advance(9.0)
    assert await cache.get("k") == 1
    assert await cache.touch("k", ttl=100.0) is True
    assert await cache.ttl("k") == pytest.approx(100.0)
    assert await cache.touch("missing") is False
    clock.advance(100.0)
    assert await cache.touch("k") is False


async def test_touch_without_default_ttl_persists(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=None, clock=clock)
    await cache.set("k", 1, ttl=5.0)
    assert await cache.touch("k") is True
    clock.advance(50.0)
    assert await cache.get("k") == 1


async def test_has_and_contains(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=1.0, clock=clock)
    await cache.set("k", 1)
    assert await cache.has("k")
    assert await cache.contains("k")
    assert not await cache.has("other")
    clock.advance(1.0)
    assert "k" not in cache
    assert not await cache.has("k")
    assert cache.stats().items == 0
    assert cache.stats().hits == 0  # has() is not a lookup


async def test_bulk_operations(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    await cache.set_many({"a": 1, "b": 2, "c": 3}, ttl=5.0)
    assert await cache.get_many(["a", "b", "x"]) == {"a": 1, "b": 2}
    assert await cache.delete_many(["a", "x"]) == 1
    assert sorted(cache.keys()) == ["b", "c"]  # type: ignore[type-var]
    clock.advance(5.0)
    assert await cache.get_many(["b", "c"]) == {}


async def test_keys_is_a_purged_snapshot(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    await cache.set("a", 1, ttl=1.0)
    await cache.set("b", 2)
    await cache.set("c", 3)
    clock.advance(1.0)
    keys = cache.keys()
    assert keys == ["b", "c"]
    for key in cache:
        await cache.delete(key)  # the snapshot does not change underneath
    assert len(cache) == 0


async def test_peek_changes_nothing(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=1.0, max_size=2, clock=clock)
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert cache.peek("a") == 1
    await cache.set("c", 3)  # "a" is still least recently used
    assert cache.peek("a") is None
    assert cache.peek("b") == 2
    clock.advance(1.0)
    assert cache.peek("b", "gone") == "gone"
    assert cache.stats().hits == 0


async def test_unhashable_key_is_a_clear_error(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    bad: Any = [1]
    for call in (
        lambda: cache.get(bad),
        lambda: cache.set(bad, 1),
        lambda: cache.delete(bad),
        lambda: cache.has(bad),
        lambda: cache.touch(bad),
        lambda: cache.ttl(bad),
    ):
        with pytest.raises(ConfigurationTypeError, match="key must be hashable"):
            await call()
    assert bad not in cache
    with pytest.raises(ConfigurationTypeError, match="key"):
        cache.peek(bad)


async def test_errors_are_of_the_mtaio_tree() -> None:
    assert issubclass(CacheKeyError, KeyError)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"max_size": 0}, ConfigurationError, "max_size"),
        ({"max_size": -3}, ConfigurationError, "max_size"),
        ({"max_size": 1.5}, ConfigurationTypeError, "max_size"),
        ({"default_ttl": 0}, ConfigurationError, "default_ttl"),
        ({"default_ttl": -1.0}, ConfigurationError, "default_ttl"),
        ({"cleanup_interval": 0}, ConfigurationError, "cleanup_interval"),
        ({"eviction_policy": "random"}, ConfigurationError, "eviction_policy"),
        ({"eviction_policy": 3}, ConfigurationTypeError, "eviction_policy"),
        ({"jitter": 1.0}, ConfigurationError, "jitter"),
        ({"jitter": -0.1}, ConfigurationError, "jitter"),
        ({"jitter": "x"}, ConfigurationTypeError, "jitter"),
        ({"clock": 3}, ConfigurationTypeError, "clock"),
        ({"on_evicted": 3}, ConfigurationTypeError, "on_evicted"),
        ({"on_removed": 3}, ConfigurationTypeError, "on_removed"),
    ],
)
def test_bad_construction(kwargs: dict[str, object], error: type[Exception], name: str) -> None:
    with pytest.raises(error, match=name):
        TTLCache(**kwargs)  # type: ignore[arg-type]


def test_properties_and_repr() -> None:
    cache = TTLCache[int](default_ttl=5.0, max_size=10, cleanup_interval=2.0, eviction_policy="LFU")
    assert cache.default_ttl == 5.0
    assert cache.max_size == 10
    assert cache.cleanup_interval == 2.0
    assert cache.eviction_policy == "lfu"
    assert "max_size=10" in repr(cache)
    assert bool(cache)
    assert TTLCache[int](default_ttl=math.inf).default_ttl is None
