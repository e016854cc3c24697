"""Fixtures of the distributed-cache tests: redis-server processes, CacheNode clusters.

``redis-server`` tests skip loudly when the binary is missing, unless the environment sets
``MTAIO_REQUIRE_REDIS=1`` (CI does), which turns that skip into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.cache import CacheNode, DistributedCache, LayeredCache
from mtaio.cache.testing import RedisServer
from mtaio.cache.testing import free_port as find_free_port
from mtaio.typing import ManualClock

REDIS_SERVER = shutil.which("redis-server")
HOST = "127.0.0.1"


def require_redis_server() -> str:
    if REDIS_SERVER is None:
        reason = (
            "!!! redis-server is not installed: the tests against real Redis are SKIPPED. "
            "Install it (apt-get install redis-server) or set MTAIO_REQUIRE_REDIS=1 to fail."
        )
        if os.environ.get("MTAIO_REQUIRE_REDIS") == "1":
            pytest.fail(reason.replace("SKIPPED", "REQUIRED (MTAIO_REQUIRE_REDIS=1)"))
        pytest.skip(reason)
    return REDIS_SERVER


class Cluster:
    """Nodes of one backend, with the controls the fault tests need."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.redis: list[RedisServer] = []
        self.nodes: list[CacheNode] = []
        self.clock = ManualClock(1000.0)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self.kind == "redis":
            return [p.address for p in self.redis]
        return [n.address for n in self.nodes]

    async def start(self, count: int) -> None:
        if self.kind == "redis":
            binary = require_redis_server()
            for _ in range(count):
                proc = RedisServer(binary=binary)
                proc.start()
                self.redis.append(proc)
        else:
            for i in range(count):
                node = CacheNode(f"n{i}", (HOST, 0), clock=self.clock)
                await node.start()
                self.nodes.append(node)

    async def kill(self, i: int) -> None:
        if self.kind == "redis":
            self.redis[i].kill()
        else:
            await self.nodes[i].stop()

    async def restart(self, i: int) -> None:
        """Bring node ``i`` back on the same port, empty (as after a crash)."""
        if self.kind == "redis":
            self.redis[i].start()
        else:
            node = CacheNode(f"n{i}", self.nodes[i].address, clock=self.clock)
            await node.start()
            self.nodes[i] = node

    def raw(self, i: int) -> aioredis.Redis:
        host, port = self.addresses[i]
        return aioredis.Redis(host=host, port=port, protocol=2)

    async def close(self) -> None:
        for proc in self.redis:
            proc.kill()
        for node in self.nodes:
            await node.stop()


@pytest.fixture(params=["node", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each contract test runs against CacheNode clusters and against redis-server ones."""
    kind: str = request.param
    if kind == "redis":
        require_redis_server()
    return kind


@contextlib.asynccontextmanager
async def started(backend: str, count: int) -> AsyncIterator[Cluster]:
    """``count`` nodes of ``backend``, stopped at exit."""
    c = Cluster(backend)
    try:
        await c.start(count)
        yield c
    finally:
        await c.close()


@pytest.fixture
async def cluster(backend: str) -> AsyncIterator[Cluster]:
    """Three nodes of the current backend."""
    async with started(backend, 3) as c:
        yield c


@contextlib.asynccontextmanager
async def layered_caches(
    addresses: list[tuple[str, int]], replication_factor: int, namespace: str
) -> AsyncIterator[Callable[..., LayeredCache[Any]]]:
    """A factory of LayeredCaches over ``addresses`` (its kwargs go to each); closed at exit."""
    made: list[LayeredCache[Any]] = []

    def make(**kwargs: Any) -> LayeredCache[Any]:
        remote = DistributedCache[Any](
            addresses, replication_factor=replication_factor, namespace=namespace, timeout=2.0
        )
        cache = LayeredCache(remote, **kwargs)
        made.append(cache)
        return cache

    try:
        yield make
    finally:
        for cache in made:
            await cache.close()


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (it reads counters a task moves), at most ``within`` s."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@pytest.fixture
async def raw_clients(cluster: Cluster) -> AsyncIterator[list[aioredis.Redis]]:
    """A plain redis-py client per node of ``cluster``, to look behind the cache's back."""
    clients = [cluster.raw(i) for i in range(len(cluster.addresses))]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
def redis_process() -> Iterator[Callable[[], RedisServer]]:
    """Start extra redis-server processes; every one is killed at teardown."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        proc = RedisServer(binary=require_redis_server())
        proc.start()
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a free loopback port."""
    return find_free_port


@pytest.fixture
async def node(clock: ManualClock) -> AsyncIterator[CacheNode]:
    """One CacheNode on a free loopback port, with a 64 KiB value cap, on ``clock``."""
    n = CacheNode("t", (HOST, 0), max_value_bytes=65536, clock=clock)
    async with n:
        yield n


@pytest.fixture
async def client(node: CacheNode) -> AsyncIterator[aioredis.Redis]:
    """A redis-py client of ``node``."""
    host, port = node.address
    c = aioredis.Redis(host=host, port=port, protocol=2)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
def run_soon() -> Callable[..., Any]:
    """Let pending callbacks and one-iteration batches run."""

    async def settle(rounds: int = 5) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    return settle
