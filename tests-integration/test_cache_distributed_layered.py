"""Seed snippet 3 (LayeredCache: TTLCache in front of DistributedCache) on ports 5000/5001.

A variant runs the same flow with the library's ``mtaio.cache.LayeredCache``, which also
keeps two processes' local tiers coherent (the hand-written class cannot).

The snippet hard-codes ``("localhost", 5000)`` and ``("localhost", 5001)``: it runs verbatim
against two embedded CacheNodes and against two real redis-server processes, and keeps reading
when one of the two nodes is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from mtaio.cache import CacheNode, DistributedCache, LayeredCache, TTLCache
from mtaio.cache.testing import RedisServer, find_redis_server
from mtaio.exceptions import CacheConnectionError

PORTS = (5000, 5001)
StopNode = Callable[[int], Awaitable[None]]


def _ports_free() -> bool:
    for port in PORTS:
        with socket.socket() as s:
            # as servers do: a closed connection lingering in TIME_WAIT does not hold the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.fixture
async def cache_nodes() -> AsyncIterator[StopNode]:
    """Two embedded CacheNodes on 5000/5001; yields a function that stops one."""
    if not _ports_free():
        pytest.skip("ports 5000/5001 are taken on this machine")
    nodes = [CacheNode(f"n{p}", ("127.0.0.1", p)) for p in PORTS]
    for node in nodes:
        await node.start()

    async def stop(i: int) -> None:
        await nodes[i].stop()

    try:
        yield stop
    finally:
        for node in nodes:
            await node.stop()


@pytest.fixture
def redis_servers() -> Iterator[StopNode]:
    """Two redis-server processes on 5000/5001; yields a function that kills one."""
    if find_redis_server() is None:
        reason = "!!! redis-server is not installed: snippet 3 on real Redis is SKIPPED"
        if os.environ.get("MTAIO_REQUIRE_REDIS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    if not _ports_free():
        pytest.skip("ports 5000/5001 are taken on this machine")
    servers = [RedisServer(port) for port in PORTS]

    async def stop(i: int) -> None:
        servers[i].kill()

    try:
        for server in servers:
            server.start()
        yield stop
    finally:
        for server in servers:
            server.kill()


async def _exercise(seed_snippet: Callable[..., dict[str, Any]], stop_node: StopNode) -> None:
    ns = seed_snippet(3)
    layered = ns["LayeredCache"]()
    try:
        assert isinstance(layered.local, TTLCache)
        assert isinstance(layered.distributed, DistributedCache)
        assert await layered.get("user:1") is None
        await layered.set("user:1", {"name": "Ada"})
        assert await layered.get("user:1") == {"name": "Ada"}
        # a value only in the distributed layer is found there and copied to the local one
        await layered.distributed.set("user:2", "Grace")
        assert await layered.local.get("user:2") is None
        assert await layered.get("user:2") == "Grace"
        assert await layered.local.get("user:2") == "Grace"
        # both nodes hold every key (replication factor 2 by default)
        assert sorted(layered.distributed.replicas("user:1")) == [
            "localhost:5000",
            "localhost:5001",
        ]
        await layered.distributed.set("user:3", "Linus")

        # One node stopped: a fresh LayeredCache (empty local tier) still reads through the
        # surviving replica and back-fills its local tier.
        await stop_node(1)
        survivor = ns["LayeredCache"]()
        try:
            assert await survivor.get("user:3") == "Linus"
            assert await survivor.local.get("user:3") == "Linus"
            assert await survivor.get("user:1") == {"name": "Ada"}
        finally:
            await survivor.distributed.close()
            await survivor.local.close()
    finally:
        # The servers are throwaway; with one stopped, clear() rightly reports the node it
        # could not reach.
        with contextlib.suppress(CacheConnectionError):
            await layered.distributed.clear()
        await layered.distributed.close()
        await layered.local.close()


async def test_snippet_3_on_embedded_cache_nodes(
    cache_nodes: StopNode, seed_snippet: Callable[..., dict[str, Any]]
) -> None:
    await _exercise(seed_snippet, cache_nodes)


@pytest.mark.redis
async def test_snippet_3_on_redis_servers(
    redis_servers: StopNode, seed_snippet: Callable[..., dict[str, Any]]
) -> None:
    await _exercise(seed_snippet, redis_servers)


async def _exercise_library(stop_node: StopNode) -> None:
    def make() -> LayeredCache[Any]:
        remote = DistributedCache[Any]([("localhost", 5000), ("localhost", 5001)])
        return LayeredCache(remote, local_ttl=60.0)

    one, two = make(), make()  # two processes, as far as coherence goes
    try:
        assert await one.connected(5.0) and await two.connected(5.0)
        assert await one.get("user:1") is None
        await one.set("user:1", {"name": "Ada"})
        assert await two.get("user:1") == {"name": "Ada"}
        for _ in range(200):  # a local hit once the write's own invalidation went by
            if await two.get("user:1") == {"name": "Ada"} and "user:1" in two.local:
                break
            await asyncio.sleep(0.01)
        assert "user:1" in two.local
        # the hand-written snippet would keep serving "Ada" from two's local tier here
        await one.set("user:1", {"name": "Grace"})
        for _ in range(200):
            if "user:1" not in two.local:
                break
            await asyncio.sleep(0.01)
        assert await two.get("user:1") == {"name": "Grace"}
        # One replica stopped (not the invalidation bus, localhost:5000): still served.
        await stop_node(1)
        assert await two.get("user:1") == {"name": "Grace"}
        fresh = make()
        try:
            assert await fresh.get("user:1") == {"name": "Grace"}
        finally:
            await fresh.close()
    finally:
        with contextlib.suppress(CacheConnectionError):
            await one.clear()
        await one.close()
        await two.close()


async def test_library_layered_cache_on_embedded_cache_nodes(cache_nodes: StopNode) -> None:
    await _exercise_library(cache_nodes)


@pytest.mark.redis
async def test_library_layered_cache_on_redis_servers(redis_servers: StopNode) -> None:
    await _exercise_library(redis_servers)
