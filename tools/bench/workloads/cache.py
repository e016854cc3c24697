"""Workload "cache": TTLCache against its peers and a hand-written OrderedDict with expiry.

Scenarios (every cache holds at most 10k entries with a 60 s ttl, called from a coroutine):

* get-hit: 200k lookups of keys that are all present.
* set: 200k writes over 100k keys into an empty cache (so 90% of the writes evict).
* mixed: 200k operations, 90% get and 10% set, over 100k keys (a warm cache, many misses).
* memory: 100k entries written into an unbounded cache; ``bytes/entry`` is what tracemalloc
  sees the cache allocate, per entry (keys and the shared value are allocated beforehand,
  so only the cache's own structures count). Its ops/s column is tracemalloc-slowed noise.

Peers: cachetools ``TTLCache`` (sync, wrapped in a coroutine as a user would), aiocache
``SimpleMemoryCache`` (unbounded: it has no size limit), cashews ``mem://``, and async-lru's
``alru_cache`` for get-hit (a decorator: "set" is a miss that calls the function). The raw
baseline is the code one writes by hand: an ``OrderedDict`` of ``(value, expires)`` tuples,
``move_to_end`` on a hit, ``popitem(last=False)`` when over size.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from mtaio.cache import TTLCache

from .._runner import Case, Options, Scenario, workload

TTL = 60.0
MAX_SIZE = 10_000
KEYSPACE = 100_000
VALUE = "value"

Get = Callable[[str], Awaitable[Any]]
Set = Callable[[str, Any], Awaitable[Any]]


class _Contender:
    """Fresh async get/set functions for one cache implementation."""

    def __init__(self, name: str, build: Callable[[int | None], tuple[Get, Set]]) -> None:
        self.name = name
        self.build = build


def _raw(max_size: int | None) -> tuple[Get, Set]:
    store: OrderedDict[str, tuple[Any, float]] = OrderedDict()
    now = time.monotonic

    async def get(key: str) -> Any:
        item = store.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= now():
            del store[key]
            return None
        store.move_to_end(key)
        return value

    async def set_(key: str, value: Any) -> None:
        store[key] = (value, now() + TTL)
        store.move_to_end(key)
        if max_size is not None and len(store) > max_size:
            store.popitem(last=False)

    get.store = store  # type: ignore[attr-defined]
    return get, set_


def _mtaio(max_size: int | None) -> tuple[Get, Set]:
    cache = TTLCache[Any](default_ttl=TTL, max_size=max_size)
    return cache.get, cache.set


def _cachetools(max_size: int | None) -> tuple[Get, Set]:
    import cachetools

    cache: Any = cachetools.TTLCache(maxsize=max_size or 10**9, ttl=TTL)

    async def get(key: str) -> Any:
        return cache.get(key)

    async def set_(key: str, value: Any) -> None:
        cache[key] = value

    return get, set_


def _aiocache(max_size: int | None) -> tuple[Get, Set]:
    from aiocache import SimpleMemoryCache

    cache = SimpleMemoryCache()

    async def set_(key: str, value: Any) -> None:
        await cache.set(key, value, ttl=TTL)

    return cache.get, set_


def _cashews(max_size: int | None) -> tuple[Get, Set]:
    from cashews import Cache

    cache = Cache()
    cache.setup(f"mem://?size={max_size or 10**9}&check_interval={TTL}")

    async def set_(key: str, value: Any) -> None:
        await cache.set(key, value, expire=TTL)

    return cache.get, set_


def _contenders() -> list[_Contender]:
    out = [_Contender("raw OrderedDict+expiry", _raw), _Contender("mtaio TTLCache", _mtaio)]
    for name, build, module in [
        ("cachetools TTLCache", _cachetools, "cachetools"),
        ("aiocache SimpleMemoryCache", _aiocache, "aiocache"),
        ("cashews mem://", _cashews, "cashews"),
    ]:
        try:
            __import__(module)
        except ImportError:  # pragma: no cover - peers are optional
            continue
        out.append(_Contender(name, build))
    return out


def _get_hit(n: int) -> Scenario:
    keys = [f"key:{i}" for i in range(MAX_SIZE)]
    order = [keys[i % MAX_SIZE] for i in range(n)]
    cases: list[Case] = []
    for contender in _contenders():
        state: dict[str, Get] = {}

        async def setup(c: _Contender = contender, s: dict[str, Get] = state) -> None:
            if "get" in s:
                return  # warm and full from the first round
            get, set_ = c.build(MAX_SIZE)
            for key in keys:
                await set_(key, VALUE)
            s["get"] = get

        async def run(s: dict[str, Get] = state) -> None:
            get = s["get"]
            for key in order:
                await get(key)

        cases.append(
            Case(contender.name, run, n, raw=contender.name.startswith("raw"), setup=setup)
        )
    try:
        from async_lru import alru_cache
    except ImportError:  # pragma: no cover
        return Scenario("get-hit", cases)

    @alru_cache(maxsize=MAX_SIZE, ttl=TTL)
    async def lookup(key: str) -> str:
        return VALUE

    async def lru_setup() -> None:
        for key in keys:
            await lookup(key)

    async def lru_run() -> None:
        for key in order:
            await lookup(key)

    cases.append(Case("async-lru alru_cache", lru_run, n, setup=lru_setup))
    return Scenario("get-hit", cases)


def _set(n: int) -> Scenario:
    rng = random.Random(1)
    order = [f"key:{rng.randrange(KEYSPACE)}" for _ in range(n)]
    cases: list[Case] = []
    for contender in _contenders():
        state: dict[str, Set] = {}

        def setup(c: _Contender = contender, s: dict[str, Set] = state) -> None:
            s["set"] = c.build(MAX_SIZE)[1]

        async def run(s: dict[str, Set] = state) -> None:
            set_ = s["set"]
            for key in order:
                await set_(key, VALUE)

        cases.append(
            Case(contender.name, run, n, raw=contender.name.startswith("raw"), setup=setup)
        )
    return Scenario("set", cases, note="90% of writes evict")


def _mixed(n: int) -> Scenario:
    rng = random.Random(2)
    ops = [(rng.random() < 0.1, f"key:{rng.randrange(KEYSPACE)}") for _ in range(n)]
    cases: list[Case] = []
    for contender in _contenders():
        state: dict[str, Any] = {}

        async def setup(c: _Contender = contender, s: dict[str, Any] = state) -> None:
            if "get" in s:
                return
            get, set_ = c.build(MAX_SIZE)
            for i in range(MAX_SIZE):
                await set_(f"key:{i}", VALUE)
            s["get"], s["set"] = get, set_

        async def run(s: dict[str, Any] = state) -> None:
            get, set_ = s["get"], s["set"]
            for is_set, key in ops:
                if is_set:
                    await set_(key, VALUE)
                else:
                    await get(key)

        cases.append(
            Case(contender.name, run, n, raw=contender.name.startswith("raw"), setup=setup)
        )
    return Scenario("mixed", cases, note="90% get / 10% set")


def _memory(n: int) -> Scenario:
    keys = [f"key:{i}" for i in range(n)]
    cases: list[Case] = []
    for contender in _contenders():
        keep: list[Any] = []

        async def run(c: _Contender = contender, keep: list[Any] = keep) -> dict[str, float]:
            keep.clear()  # the previous round's cache is freed before measuring
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            get, set_ = c.build(None)
            for key in keys:
                await set_(key, VALUE)
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            keep.append((get, set_))
            return {"bytes/entry": (after - before) / n}

        cases.append(Case(contender.name, run, n, raw=contender.name.startswith("raw")))
    return Scenario("memory", cases, note="bytes per entry at 100k entries")


@workload("cache")
def cache_workload(options: Options) -> list[Scenario]:
    """The four cache scenarios."""
    n = options.scale(200_000)
    return [_get_hit(n), _set(n), _mixed(n), _memory(100_000)]
