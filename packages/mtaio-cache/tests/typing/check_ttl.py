"""Type-checked by mypy, never run: TTLCache generics, overloads and the cached decorator."""

from collections.abc import Callable, Coroutine, Hashable
from typing import Any, assert_type

from mtaio.cache import CacheStats, TTLCache, TTLLFUCache, cached


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


def sync_checks(cache: TTLCache[bytes]) -> None:
    assert_type(cache.peek("k"), bytes | None)
    assert_type(cache.peek("k", b""), bytes)
    assert_type(cache.keys(), list[Hashable])
    assert_type(list(cache), list[Hashable])
    assert_type("k" in cache, bool)
