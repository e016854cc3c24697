"""get_or_set single flight, the cached decorator and refresh-ahead."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mtaio.cache import TTLCache, cached
from mtaio.exceptions import CacheError, ConfigurationError, ConfigurationTypeError
from mtaio.typing import ManualClock


class Loader:
    """A factory that counts its calls and blocks until released."""

    def __init__(self, value: Any = "v") -> None:
        self.calls = 0
        self.value = value
        self.release = asyncio.Event()

    async def __call__(self) -> Any:
        self.calls += 1
        await self.release.wait()
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


async def test_single_flight_under_100_concurrent_callers(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    loader = Loader("computed")
    callers = [asyncio.create_task(cache.get_or_set("k", loader)) for _ in range(100)]
    await asyncio.sleep(0)
    loader.release.set()
    assert await asyncio.gather(*callers) == ["computed"] * 100
    assert loader.calls == 1
    assert await cache.get("k") == "computed"
    stats = cache.stats()
    assert stats.loads == 1
    assert stats.misses == 1  # the caller that started the load
    assert stats.coalesced == 99  # the callers that waited on it
    await cache.close()


async def test_hit_does_not_call_factory(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    await cache.set("k", 1)
    calls = 0

    def factory() -> int:
        nonlocal calls
        calls += 1
        return 2

    assert await cache.get_or_set("k", factory) == 1
    assert calls == 0
    assert cache.stats().hits == 1


async def test_sync_factory_and_ttl(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=100.0, clock=clock)
    assert await cache.get_or_set("k", lambda: 7, ttl=5.0) == 7
    assert await cache.ttl("k") == pytest.approx(5.0)
    clock.advance(5.0)
    assert await cache.get_or_set("k", lambda: 8) == 8  # expired: loaded again


async def test_stored_none_is_a_hit(clock: ManualClock) -> None:
    cache = TTLCache[int | None](clock=clock)
    assert await cache.get_or_set("k", lambda: None) is None
    assert await cache.get_or_set("k", lambda: 1) is None


async def test_exception_reaches_every_waiter_and_is_not_cached(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    loader = Loader(LookupError("backend down"))
    callers = [asyncio.create_task(cache.get_or_set("k", loader)) for _ in range(10)]
    await asyncio.sleep(0)
    loader.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    assert loader.calls == 1
    assert "k" not in cache
    assert cache.stats().load_errors == 1
    assert await cache.get_or_set("k", lambda: "recovered") == "recovered"


async def test_cancelled_waiter_leaves_the_load_to_the_others(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    loader = Loader("v")
    first = asyncio.create_task(cache.get_or_set("k", loader))
    second = asyncio.create_task(cache.get_or_set("k", loader))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    loader.release.set()
    assert await second == "v"
    assert loader.calls == 1


async def test_load_is_cancelled_when_no_one_waits(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    loader = Loader("v")
    only = asyncio.create_task(cache.get_or_set("k", loader))
    await asyncio.sleep(0)
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert "k" not in cache
    loader.release.set()
    assert await cache.get_or_set("k", loader) == "v"
    assert loader.calls == 2


async def test_close_cancels_loads_and_waiters_get_cache_error(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    loader = Loader("v")
    waiter = asyncio.create_task(cache.get_or_set("k", loader))
    await asyncio.sleep(0)
    await cache.close()
    with pytest.raises(CacheError, match="cancelled"):
        await waiter
    assert asyncio.all_tasks() == {asyncio.current_task()}
    # the cancelled load is forgotten: the key loads again
    assert await cache.get_or_set("k", lambda: "again") == "again"
    await cache.close()


@pytest.mark.parametrize("write", ["delete", "set", "clear"])
async def test_write_during_load_keeps_result_out(clock: ManualClock, write: str) -> None:
    cache = TTLCache[str](clock=clock)
    loader = Loader("stale")
    waiter = asyncio.create_task(cache.get_or_set("k", loader))
    await asyncio.sleep(0)
    if write == "delete":
        await cache.delete("k")
    elif write == "set":
        await cache.set("k", "fresh")
    else:
        await cache.clear()
    loader.release.set()
    assert await waiter == "stale"  # the waiter still gets what it asked for
    assert await cache.get("k") == ("fresh" if write == "set" else None)


async def test_refresh_ahead_serves_old_value_while_reloading(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    version = 0

    async def load() -> int:
        nonlocal version
        version += 1
        return version

    assert await cache.get_or_set("k", load, refresh_ahead=2.0) == 1
    clock.advance(7.0)
    assert await cache.get_or_set("k", load, refresh_ahead=2.0) == 1  # not near expiry
    clock.advance(1.5)  # 1.5 s left: refresh in the background
    assert await cache.get_or_set("k", load, refresh_ahead=2.0) == 1
    assert await cache.get_or_set("k", load, refresh_ahead=2.0) == 1  # one refresh at a time
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert version == 2
    assert await cache.get("k") == 2
    assert await cache.ttl("k") == pytest.approx(10.0)
    await cache.close()


async def test_failed_refresh_keeps_old_value(clock: ManualClock) -> None:
    cache = TTLCache[int](default_ttl=10.0, clock=clock)
    await cache.set("k", 1)
    clock.advance(9.0)

    async def broken() -> int:
        raise RuntimeError("nope")

    assert await cache.get_or_set("k", broken, refresh_ahead=5.0) == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get("k") == 1
    assert cache.stats().load_errors == 1


async def test_get_or_set_validates(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    with pytest.raises(ConfigurationError, match="ttl"):
        await cache.get_or_set("k", lambda: 1, ttl=0)
    with pytest.raises(ConfigurationError, match="refresh_ahead"):
        await cache.get_or_set("k", lambda: 1, refresh_ahead=-1)


async def test_cached_decorator_single_flight_and_keys(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    calls: list[tuple[int, int]] = []

    @cached(cache, ttl=30.0)
    async def add(x: int, y: int = 0) -> int:
        calls.append((x, y))
        await asyncio.sleep(0)
        return x + y

    results = await asyncio.gather(*(add(1, y=2) for _ in range(50)))
    assert results == [3] * 50
    assert await add(1) == 1
    assert await add(1, y=2) == 3
    assert calls == [(1, 2), (1, 0)]
    assert add.__name__ == "add"
    clock.advance(30.0)
    assert await add(1, y=2) == 3
    assert len(calls) == 3


async def test_cached_custom_key_and_exceptions(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)
    calls = 0

    @cached(cache, key=lambda user_id, verbose=False: f"user:{user_id}")
    async def fetch(user_id: int, verbose: bool = False) -> str:
        nonlocal calls
        calls += 1
        if user_id < 0:
            raise ValueError("bad id")
        return f"user {user_id}"

    assert await fetch(1) == "user 1"
    assert await fetch(1, verbose=True) == "user 1"
    assert await cache.get("user:1") == "user 1"
    with pytest.raises(ValueError, match="bad id"):
        await fetch(-1)
    with pytest.raises(ValueError, match="bad id"):
        await fetch(-1)
    assert calls == 3


async def test_cached_refresh_ahead(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    version = 0

    @cached(cache, ttl=10.0, refresh_ahead=1.0)
    async def current() -> int:
        nonlocal version
        version += 1
        return version

    assert await current() == 1
    clock.advance(9.5)
    assert await current() == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await current() == 2
    await cache.close()


def test_cached_validates() -> None:
    cache = TTLCache[int]()
    with pytest.raises(ConfigurationTypeError, match="cache"):
        cached({})  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="ttl"):
        cached(cache, ttl=0)
    with pytest.raises(ConfigurationError, match="refresh_ahead"):
        cached(cache, refresh_ahead=0)
    with pytest.raises(ConfigurationTypeError, match="key"):
        cached(cache, key=3)  # type: ignore[call-overload]
