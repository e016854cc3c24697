"""Type-checked by mypy, never run: DistributedCache generics and the serializer protocol."""

from typing import assert_type

from mtaio.cache import (
    CacheNode,
    CacheNodeStats,
    DistributedCache,
    DistributedCacheStats,
    JsonSerializer,
    NodeStats,
    Serializer,
    SignedPickleSerializer,
)


async def checks() -> None:
    cache = DistributedCache[str]([("localhost", 5000), ("localhost", 5001)])
    assert_type(await cache.get("k"), str | None)
    assert_type(await cache.get("k", "fallback"), str)
    assert_type(await cache.get("k", 0), str | int)
    assert_type(await cache.get_many(["k"]), dict[str, str])
    assert_type(await cache.delete("k"), bool)
    assert_type(await cache.delete_many(["k"]), int)
    assert_type(await cache.touch("k", ttl=5), bool)
    assert_type(cache.stats(), DistributedCacheStats)
    assert_type(cache.stats().nodes, dict[str, NodeStats])
    await cache.set("k", 1)  # type: ignore[arg-type]
    await cache.set("k", "v", ttl=5, tags=("user:7", "org:3"))
    await cache.set_many({"k": "v"}, tags=["org:3"])
    await cache.invalidate_tags("org:3", "user:7")

    async def load() -> str:
        return "v"

    assert_type(await cache.get_or_set("k", load), str)
    assert_type(await cache.get_or_set("k", lambda: "v", 60, refresh_ahead=5), str)
    assert_type(await cache.get_or_set("k", load, cross_process=False), str)
    await cache.get_or_set("k", lambda: 1)  # type: ignore[arg-type]
    assert_type(cache.stats().load_waits, int)
    assert_type(cache.stats().nodes["n"].readable, bool)
    await cache.set_many({"k": b"x"})  # type: ignore[dict-item]
    DistributedCache[int](["redis://:pw@host:6379/1"], 2, 1, 1, default_ttl=60.0)
    s: Serializer = JsonSerializer()
    s = SignedPickleSerializer(b"k" * 32)
    assert_type(s.dumps(1), bytes)
    async with CacheNode("n", ("127.0.0.1", 0)) as node:
        assert_type(node.address, tuple[str, int])
        assert_type(node.stats(), CacheNodeStats)
