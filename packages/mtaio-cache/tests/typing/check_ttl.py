"""Type-checked by mypy, never run: TTLCache generics, overloads and the cached decorator."""

from collections.abc import Callable, Coroutine, Hashable
from typing import Any, assert_type

from mtaio.cache import AsyncCache, CachedFunction, CacheStats, TTLCache, TTLLFUCache, cached


async def checks() -> None:
    cache = TTLCache[str]()
    assert_type(await cache.get("k"), str | None)
    assert_type(await cache.get("k", "fallback"), str)
    assert_type(await cache.get("k", 0), str | int)
    assert_type(await cache.get_or_set("k", lambda: "v"), str)
    assert_type(await cache.get_many(["k"]), dict[Hashable, str])
    assert_type(cache.stats(), CacheStats)
    await cache.set("k", 1)  # type: ignore[arg-type]
    await cache.set_many({"k": b"x"})  # type: ignore[dict-item]

    lfu: TTLCache[int] = TTLLFUCache[int](max_size=10)
    assert_type(await lfu.get("k"), int | None)

    async with cache.transaction() as tx:
        await tx.set("k", "v")
        await tx.set("k", 2)  # type: ignore[arg-type]
        assert_type(await tx.get("k"), str | None)

    @cached(cache, ttl=5.0)
    async def fetch(user_id: int, *, verbose: bool = False) -> str:
        return str(user_id)

    assert_type(await fetch(1, verbose=True), str)
    wrapped: Callable[[int], Coroutine[Any, Any, str]] = fetch
    await wrapped(2)
    await fetch("1")  # type: ignore[arg-type]
    await fetch(1, loud=True)  # type: ignore[call-arg]
    assert_type(fetch.cache_key(1, verbose=True), Hashable)
    assert_type(await fetch.invalidate(1), bool)
    fetch.cache_key("1")  # type: ignore[arg-type]
    await fetch.invalidate(1, loud=True)  # type: ignore[call-arg]

    # The cache's value type must hold the function's result.
    @cached(cache)  # type: ignore[arg-type]
    async def count() -> int:
        return 1

    # The key builder is checked against the function's parameters.
    @cached(cache, key=lambda user_id: f"user:{user_id}")  # type: ignore[arg-type]
    async def two_params(user_id: int, verbose: bool) -> str:
        return ""

    # (a lambda's parameters are Any to mypy: a typed key function checks the types too)
    def user_key(user_id: int) -> str:
        return f"user:{user_id}"

    @cached(cache, key=user_key)
    async def by_user(user_id: int) -> str:
        return ""

    typed: CachedFunction[[int], str] = by_user
    assert_type(await typed(1), str)

    @cached(cache, key=user_key)  # type: ignore[arg-type]
    async def by_name(name: str) -> str:
        return ""

    # condition sees the result type
    @cached(cache, condition=lambda result: result.startswith("u"))
    async def kept(user_id: int) -> str:
        return ""

    class Service:
        @cached(cache, key=lambda self, user_id: f"user:{user_id}")
        async def load(self, user_id: int) -> str:
            return ""

    svc = Service()
    assert_type(await svc.load(7), str)
    assert_type(await svc.load.invalidate(7), bool)
    assert_type(await Service.load.invalidate(svc, 7), bool)

    # every mtaio cache is an AsyncCache; so is a user's own class
    protocol: AsyncCache[Hashable, str] = cache
    assert_type(await protocol.get("k"), str | None)
    assert_type(await protocol.get_or_set("k", lambda: "v"), str)
    await protocol.set("k", "v", tags=("t",))
    await cache.invalidate_tags("t")
    assert_type(cache.items(), list[tuple[Hashable, str]])
    assert_type(cache.stats().coalesced, int)


def sync_checks(cache: TTLCache[bytes]) -> None:
    assert_type(cache.peek("k"), bytes | None)
    assert_type(cache.peek("k", b""), bytes)
    assert_type(cache.keys(), list[Hashable])
    assert_type(list(cache), list[Hashable])
    assert_type("k" in cache, bool)
