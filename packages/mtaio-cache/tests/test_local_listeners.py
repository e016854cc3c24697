"""Eviction listeners: reasons, the simple on_evicted form, async ones, re-entrancy, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

import pytest

from mtaio.cache import EvictionReason, TTLCache
from mtaio.typing import ManualClock

Log = list[tuple[Hashable, Any, EvictionReason]]


async def test_every_reason_is_reported(clock: ManualClock) -> None:
    log: Log = []
    cache = TTLCache[int](
        default_ttl=10.0, max_size=2, clock=clock, on_removed=lambda *a: log.append(a)
    )
    await cache.set("a", 1)
    await cache.set("a", 2)  # replaced
    await cache.set("b", 3)
    await cache.set("c", 4)  # "a" evicted for capacity
    await cache.delete("b")  # deleted
    clock.advance(10.0)
    assert await cache.get("c") is None  # expired
    await cache.set("d", 5)
    await cache.clear()  # cleared
    assert log == [
        ("a", 1, EvictionReason.REPLACED),
        ("a", 2, EvictionReason.CAPACITY),
        ("b", 3, EvictionReason.DELETED),
        ("c", 4, EvictionReason.EXPIRED),
        ("d", 5, EvictionReason.CLEARED),
    ]


async def test_on_evicted_simple_form_hears_only_what_the_cache_dropped(
    clock: ManualClock,
) -> None:
    seen: list[tuple[Hashable, int]] = []
    cache = TTLCache[int](
        default_ttl=10.0,
        max_size=1,
        clock=clock,
        on_evicted=lambda k, v: seen.append((k, v)),
    )
    await cache.set("a", 1)
    await cache.set("a", 2)  # replaced: not an eviction
    await cache.set("b", 3)  # capacity
    clock.advance(10.0)
    await cache.get("b")  # expired
    await cache.set("c", 4)
    await cache.delete("c")  # deleted: not an eviction
    await cache.set("d", 5)
    await cache.clear()
    assert seen == [("a", 2), ("b", 3)]


async def test_async_listener_is_awaited(clock: ManualClock) -> None:
    seen: list[str] = []

    async def listener(key: Hashable, value: int, reason: EvictionReason) -> None:
        await asyncio.sleep(0)
        seen.append(f"{key}:{reason}")

    cache = TTLCache[int](clock=clock)
    cache.add_listener(listener)
    await cache.set("a", 1)
    await cache.delete("a")
    assert seen == ["a:deleted"]


async def test_listener_may_use_the_cache(clock: ManualClock) -> None:
    cache = TTLCache[int](max_size=3, clock=clock)

    async def demote(key: Hashable, value: int, reason: EvictionReason) -> None:
        if reason is EvictionReason.CAPACITY and not str(key).startswith("old-"):
            # Re-entrant: reads and writes the cache that is evicting.
            assert await cache.get(key) is None
            await cache.delete("b")
            await cache.set(f"old-{key}", value)

    cache.add_listener(demote)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.set("c", 3)
    await cache.set("d", 4)  # evicts "a", whose listener deletes "b" and adds "old-a"
    assert cache.keys() == ["c", "d", "old-a"]


async def test_sync_listener_may_use_the_cache(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    sizes: list[int] = []
    cache.add_listener(lambda k, v, r: sizes.append(len(cache)))
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.delete("a")
    assert sizes == [1]


async def test_listener_error_is_logged_not_raised(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(key: Hashable, value: int, reason: EvictionReason) -> None:
        raise RuntimeError("listener bug")

    seen: list[Hashable] = []
    cache = TTLCache[int](clock=clock)
    cache.add_listener(broken)
    cache.add_listener(lambda k, v, r: seen.append(k))
    await cache.set("a", 1)
    with caplog.at_level(logging.ERROR, logger="mtaio.cache"):
        assert await cache.delete("a") is True
    assert "listener" in caplog.text
    assert seen == ["a"]  # the next listener still ran


async def test_remove_listener(clock: ManualClock) -> None:
    seen: list[Hashable] = []

    def listener(key: Hashable, value: int, reason: EvictionReason) -> None:
        seen.append(key)

    cache = TTLCache[int](clock=clock)
    cache.add_listener(listener)
    assert cache.remove_listener(listener) is True
    assert cache.remove_listener(listener) is False
    await cache.set("a", 1)
    await cache.delete("a")
    assert seen == []


async def test_purge_runs_async_listeners_as_tasks_closed_by_close(clock: ManualClock) -> None:
    started = asyncio.Event()
    finished: list[Hashable] = []

    async def slow(key: Hashable, value: int, reason: EvictionReason) -> None:
        started.set()
        await asyncio.sleep(3600)
        finished.append(key)

    cache = TTLCache[int](default_ttl=1.0, clock=clock, cleanup_interval=None)
    cache.add_listener(slow)
    await cache.set("a", 1)
    clock.advance(1.0)
    assert cache.purge_expired() == 1
    await started.wait()
    await cache.close()
    assert finished == []
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_purge_without_loop_skips_async_listeners(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Hashable] = []

    async def listener(key: Hashable, value: int, reason: EvictionReason) -> None:
        calls.append(key)  # pragma: no cover - never runs: no loop

    cache = TTLCache[int](default_ttl=1.0, clock=clock)
    cache.add_listener(listener)
    asyncio.run(cache.set("a", 1))
    clock.advance(2.0)
    with caplog.at_level(logging.WARNING, logger="mtaio.cache"):
        assert len(cache) == 0
    assert "no running event loop" in caplog.text
    assert calls == []


def test_sync_listeners_run_from_sync_purge(clock: ManualClock) -> None:
    log: Log = []
    cache = TTLCache[int](default_ttl=1.0, clock=clock, on_removed=lambda *a: log.append(a))
    asyncio.run(cache.set("a", 1))
    clock.advance(1.0)
    assert cache.keys() == []
    assert log == [("a", 1, EvictionReason.EXPIRED)]


async def test_sync_listener_returning_a_coroutine_is_awaited(clock: ManualClock) -> None:
    seen: list[Hashable] = []

    async def record(key: Hashable) -> None:
        seen.append(key)

    cache = TTLCache[int](default_ttl=1.0, clock=clock, cleanup_interval=None)
    cache.add_listener(lambda k, v, r: record(k))
    await cache.set("a", 1)
    await cache.delete("a")
    assert seen == ["a"]
    await cache.set("b", 2)
    clock.advance(1.0)
    assert cache.purge_expired() == 1  # from sync code: awaited in a task
    await cache.close()  # cancels it before it ran: nothing is left un-awaited
    await cache.set("c", 3)
    clock.advance(1.0)
    cache.purge_expired()
    await asyncio.sleep(0)
    assert seen == ["a", "c"]


async def test_async_listener_error_is_logged(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(key: Hashable, value: int, reason: EvictionReason) -> None:
        raise RuntimeError("async listener bug")

    cache = TTLCache[int](default_ttl=1.0, clock=clock, cleanup_interval=None)
    cache.add_listener(broken)
    with caplog.at_level(logging.ERROR, logger="mtaio.cache"):
        await cache.set("a", 1)
        await cache.delete("a")
        await cache.set("b", 1)
        clock.advance(1.0)
        cache.purge_expired()
        await asyncio.sleep(0)
    failures = [
        r for r in caplog.records if r.exc_info and "async listener bug" in str(r.exc_info[1])
    ]
    assert len(failures) == 2
