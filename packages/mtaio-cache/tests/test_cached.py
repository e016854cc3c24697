"""``cached`` on par with cashews (issue 15): keys through the signature, invalidate,
cache_key, condition, any AsyncCache, sync functions refused, coalesced waiters counted."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import pytest

from mtaio.cache import AsyncCache, TTLCache, cached
from mtaio.exceptions import ConfigurationTypeError
from mtaio.typing import ManualClock


async def test_calls_that_bind_alike_share_one_entry(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    loads: list[tuple[int, int]] = []

    @cached(cache)
    async def f(x: int, y: int = 2) -> int:
        loads.append((x, y))
        return x + y

    assert await f(1) == 3
    assert await f(x=1) == 3
    assert await f(1, y=2) == 3
    assert await f(1, 2) == 3
    assert await f(y=2, x=1) == 3
    assert loads == [(1, 2)]
    assert len(cache) == 1
    assert f.cache_key(1) == f.cache_key(x=1, y=2)
    assert f.cache_key(1) != f.cache_key(1, 3)
    assert await f(1, 3) == 4
    assert len(loads) == 2


class Color(enum.Enum):
    RED = 1


async def test_default_key_is_a_stable_readable_string(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)

    @cached(cache)
    async def g(a: Any, *rest: Any, flag: bool = False, **extra: Any) -> str:
        return "x"

    key = g.cache_key("s,t", 1.5, None, b"b", Color.RED, (1, [2]), {3, 1}, flag=True, z={"k": 1})
    assert isinstance(key, str)
    assert key.endswith(
        "g(a='s,t',rest=(1.5,None,b'b',Color.RED,(1,[2]),{1,3}),flag=True,extra={'z':{'k':1}})"
    )
    # a comma inside a string cannot pass for an argument boundary
    assert g.cache_key("a,b") != g.cache_key("a", "b")


async def test_arguments_without_a_stable_key_need_a_builder(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)

    @cached(cache)
    async def h(obj: object) -> int:
        return 1

    with pytest.raises(ConfigurationTypeError, match=r"'obj'.*key="):
        await h(object())
    with pytest.raises(TypeError):
        await h(1, 2)  # type: ignore[call-arg]
    assert len(cache) == 0


async def test_invalidate_drops_one_call(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    version = 0

    @cached(cache)
    async def f(x: int, y: int = 2) -> int:
        return x + y + version

    assert await f(1) == 3
    assert await f(5) == 7
    version = 10
    assert await f.invalidate(x=1, y=2)  # the same entry as f(1)
    assert not await f.invalidate(1)  # already gone
    assert await f(1) == 13
    assert await f(5) == 7  # untouched


async def test_invalidate_with_a_key_builder(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)

    @cached(cache, key=lambda user_id, verbose=False: f"user:{user_id}")
    async def fetch(user_id: int, verbose: bool = False) -> str:
        return f"user {user_id}"

    assert fetch.cache_key(7) == "user:7"
    await fetch(7, verbose=True)
    assert await cache.get("user:7") == "user 7"
    assert await fetch.invalidate(7)
    assert "user:7" not in cache


async def test_condition_keeps_results_out(clock: ManualClock) -> None:
    cache = TTLCache[int | None](clock=clock)
    calls = 0
    gate = asyncio.Event()

    @cached(cache, condition=lambda result: result is not None)
    async def find(x: int) -> int | None:
        nonlocal calls
        calls += 1
        await gate.wait()
        return x if x > 0 else None

    waiters = [asyncio.create_task(find(-1)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [None] * 10
    assert calls == 1  # single flight still holds for a result not cached
    assert len(cache) == 0
    assert await find(-1) is None
    assert calls == 2
    assert await find(3) == 3
    assert await find(3) == 3
    assert calls == 3
    stats = cache.stats()
    assert stats.load_errors == 0  # a result kept out is no error
    assert stats.coalesced == 9


async def test_waiters_on_one_load_count_as_coalesced(clock: ManualClock) -> None:
    cache = TTLCache[int](clock=clock)
    gate = asyncio.Event()

    @cached(cache)
    async def slow() -> int:
        await gate.wait()
        return 1

    callers = [asyncio.create_task(slow()) for _ in range(100)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*callers) == [1] * 100
    await slow()
    stats = cache.stats()
    assert (stats.misses, stats.coalesced, stats.hits, stats.loads) == (1, 99, 1, 1)
    assert stats.hit_rate == 0.5
    cache.reset_stats()
    assert cache.stats().coalesced == 0


def test_sync_function_is_refused() -> None:
    cache = TTLCache[int]()

    def plain(x: int) -> int:
        return x

    with pytest.raises(ConfigurationTypeError, match="coroutine functions"):
        cached(cache)(plain)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="condition"):
        cached(cache, condition=5)  # type: ignore[call-overload]


class _DictCache:
    """A user's own cache: a dict, implementing AsyncCache by hand (no single flight)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.loads = 0

    async def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def set(
        self, key: str, value: Any, ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[Any]] | Callable[[], Any],
        ttl: float | None = None,
        *,
        refresh_ahead: float | None = None,
    ) -> Any:
        if key not in self.data:
            self.loads += 1
            result = factory()
            self.data[key] = await result if asyncio.iscoroutine(result) else result
        return self.data[key]

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return {k: self.data[k] for k in keys if k in self.data}

    async def set_many(
        self, items: Mapping[str, Any], ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        self.data.update(items)

    async def delete_many(self, keys: Iterable[str]) -> int:
        return sum([await self.delete(k) for k in keys])

    async def clear(self) -> None:
        self.data.clear()

    async def close(self) -> None:
        pass


async def test_a_users_own_cache_works() -> None:
    own = _DictCache()
    assert isinstance(own, AsyncCache)
    protocol_typed: AsyncCache[str, Any] = own

    @cached(protocol_typed)
    async def double(x: int) -> int:
        return 2 * x

    assert await double(4) == 8
    assert await double(x=4) == 8
    assert own.loads == 1
    assert list(own.data.values()) == [8]
    assert await double.invalidate(4)
    assert own.data == {}


def test_ttl_cache_is_an_async_cache() -> None:
    assert isinstance(TTLCache[int](), AsyncCache)
    with pytest.raises(ConfigurationTypeError, match="AsyncCache"):
        cached(object())  # type: ignore[call-overload]


async def test_methods_bind_their_instance(clock: ManualClock) -> None:
    cache = TTLCache[str](clock=clock)

    class Users:
        def __init__(self, org: str) -> None:
            self.org = org

        @cached(cache, key=lambda self, user_id: f"{self.org}:{user_id}")
        async def name(self, user_id: int) -> str:
            return f"{self.org}/{user_id}"

    acme, initech = Users("acme"), Users("initech")
    assert await acme.name(1) == "acme/1"
    assert await initech.name(1) == "initech/1"
    assert acme.name.cache_key(1) == "acme:1"
    assert await acme.name.invalidate(1)
    assert sorted(map(str, cache.keys())) == ["initech:1"]
    assert await Users.name.invalidate(initech, 1)
    assert len(cache) == 0
    assert "bound" in repr(acme.name)
    assert "cached" in repr(Users.name)
