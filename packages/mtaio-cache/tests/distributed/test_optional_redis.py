from __future__ import annotations

import subprocess
import sys

import pytest

from mtaio.cache import CacheDependencyError, DistributedCache
from mtaio.exceptions import CacheError, ConfigurationError, ConfigurationTypeError


def test_constructing_without_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes "import redis..." raise ImportError.
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio.connection", None)
    with pytest.raises(CacheDependencyError, match=r"pip install 'mtaio-cache\[redis\]'") as info:
        DistributedCache[str]([("localhost", 5000)])
    error: object = info.value
    assert isinstance(error, ImportError)
    assert isinstance(error, CacheError)


def test_importing_mtaio_cache_does_not_need_redis() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'redis' or name.startswith('redis.'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import mtaio.cache\n"
        "assert 'redis' not in sys.modules\n"
        "try:\n"
        "    mtaio.cache.DistributedCache([('localhost', 5000)])\n"
        "except mtaio.cache.CacheDependencyError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'mtaio-cache[redis]'" in out.stdout


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("localhost:5000",), {}, ConfigurationTypeError, "nodes must be a list"),
        (([],), {}, ConfigurationError, "at least one node"),
        (([("h", 1)], 0), {}, ConfigurationError, "replication_factor"),
        (([("h", 1), ("h", 2)], 2, 3), {}, ConfigurationError, "read_quorum must be at most"),
        (([("h", 1), ("h", 2)], 2, 1, 3), {}, ConfigurationError, "write_quorum must be at most"),
        (([("h", 1)],), {"default_ttl": 0}, ConfigurationError, "default_ttl"),
        (([("h", 1)],), {"namespace": ""}, ConfigurationError, "namespace"),
        (([("h", 1)],), {"serializer": object()}, ConfigurationTypeError, "serializer must"),
        (([("h", 1)],), {"timeout": 0}, ConfigurationError, "timeout"),
        (([("h", 1), ("h", 1)],), {}, ConfigurationError, "listed twice"),
        (([("h", "1")],), {}, ConfigurationTypeError, "each node must be"),
        (([("h", 0)],), {}, ConfigurationError, "port must be"),
        ((["http://h:1"],), {}, ConfigurationError, "redis:// or rediss://"),
    ],
)
def test_bad_configuration_is_refused(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        DistributedCache(*args, **kwargs)  # type: ignore[arg-type]


async def test_nodes_from_urls_and_tuples_share_names() -> None:
    cache = DistributedCache[str](
        ["redis://:pw@10.0.0.1:6380/0", "rediss://10.0.0.2:6381/2", ("10.0.0.3", 6379)],
        replication_factor=5,
    )
    assert cache.nodes == ["10.0.0.1:6380", "10.0.0.2:6381/2", "10.0.0.3:6379"]
    assert len(cache.replicas("k")) == 3  # capped at the number of nodes
    assert "rf=3" in repr(cache)
    with pytest.raises(ConfigurationTypeError, match="key must be a str"):
        await cache.get(1)  # type: ignore[call-overload]
    await cache.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_cache_can_be_used_from_a_second_event_loop() -> None:
    # The first loop's connections die with it (their transports warn when collected);
    # the cache opens new ones on the new loop instead of failing.
    import asyncio
    import gc

    from mtaio.cache import CacheNode

    async def scenario(cache: DistributedCache[int], node: CacheNode, value: int) -> int | None:
        await node.start()
        try:
            await cache.set("k", value)
            return await cache.get("k")
        finally:
            await node.stop()

    node = CacheNode("loops", ("127.0.0.1", 0))
    asyncio.run(node.start())
    address = node.address
    asyncio.run(node.stop())
    node = CacheNode("loops", address)
    cache = DistributedCache[int]([address], replication_factor=1)
    assert asyncio.run(scenario(cache, node, 1)) == 1
    assert asyncio.run(scenario(cache, node, 2)) == 2
    asyncio.run(cache.close())
    gc.collect()


async def test_passwords_from_the_argument_or_the_url() -> None:
    from mtaio.cache import CacheNode
    from mtaio.exceptions import CacheConnectionError

    async with CacheNode("pw", password="s3cret") as node:
        host, port = node.address
        async with DistributedCache[int]([node.address], password="s3cret") as cache:
            await cache.set("k", 1)
        async with DistributedCache[int]([f"redis://:s3cret@{host}:{port}/0"]) as cache:
            assert await cache.get("k") == 1
        async with DistributedCache[int]([node.address], password="wrong", timeout=0.5) as cache:
            with pytest.raises(CacheConnectionError, match="invalid username-password"):
                await cache.get("k")
