"""Type-checked by mypy, never run: LayeredCache, AsyncCache and cached over both tiers."""

from typing import Any, assert_type

from mtaio.cache import (
    AsyncCache,
    DistributedCache,
    LayeredCache,
    LayeredCacheStats,
    cached,
)


async def checks() -> None:
    remote = DistributedCache[int]([("localhost", 6379)])
    layered = LayeredCache(remote, local_ttl=30.0)
    assert_type(layered, LayeredCache[int])
    assert_type(await layered.get("k"), int | None)
    assert_type(await layered.get("k", 0), int)
    assert_type(await layered.get_many(["k"]), dict[str, int])
    assert_type(await layered.get_or_set("k", lambda: 1), int)
    assert_type(layered.stats(), LayeredCacheStats)
    await layered.set("k", "v")  # type: ignore[arg-type]
    await layered.set(1, 1)  # type: ignore[arg-type]
    await layered.invalidate_tags("t")

    protocol: AsyncCache[str, int] = layered
    other: AsyncCache[str, int] = remote
    assert_type(await protocol.get("k"), int | None)
    assert_type(await other.get_or_set("k", lambda: 2), int)

    @cached(layered, ttl=60)
    async def count(name: str) -> int:
        return len(name)

    assert_type(await count("x"), int)

    @cached(layered)  # type: ignore[arg-type]
    async def text(name: str) -> str:
        return name

    @cached(remote, key=lambda name: f"n:{name}")
    async def remote_count(name: str) -> int:
        return len(name)

    @cached(remote, key=lambda name: 5)  # type: ignore[arg-type, return-value]
    async def int_key(name: str) -> int:
        return 1

    any_cache: Any = layered
    await any_cache.close()
