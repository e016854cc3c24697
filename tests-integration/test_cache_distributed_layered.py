"""Seed snippet 3 (LayeredCache: TTLCache in front of DistributedCache) on ports 5000/5001.

The snippet hard-codes ``("localhost", 5000)`` and ``("localhost", 5001)``: it runs verbatim
against two embedded CacheNodes and against two real redis-server processes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from mtaio.cache import CacheNode, DistributedCache, TTLCache

PORTS = (5000, 5001)


def _ports_free() -> bool:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.fixture
async def cache_nodes() -> AsyncIterator[None]:
    if not _ports_free():
        pytest.skip("ports 5000/5001 are taken on this machine")
    nodes = [CacheNode(f"n{p}", ("127.0.0.1", p)) for p in PORTS]
    for node in nodes:
        await node.start()
    try:
        yield
    finally:
        for node in nodes:
            await node.stop()


@pytest.fixture
def redis_servers() -> Iterator[None]:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "!!! redis-server is not installed: snippet 3 on real Redis is SKIPPED"
        if os.environ.get("MTAIO_REQUIRE_REDIS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    if not _ports_free():
        pytest.skip("ports 5000/5001 are taken on this machine")
    procs = [
        subprocess.Popen(
            [binary, "--port", str(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in PORTS
    ]
    try:
        for port in PORTS:
            deadline = time.monotonic() + 5
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(8).startswith(b"+PONG"):
                            break
                except OSError:
                    assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                    time.sleep(0.02)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def _exercise(seed_snippet: Callable[..., dict[str, Any]]) -> None:
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
    finally:
        await layered.distributed.clear()
        await layered.distributed.close()
        await layered.local.close()


async def test_snippet_3_on_embedded_cache_nodes(
    cache_nodes: None, seed_snippet: Callable[..., dict[str, Any]]
) -> None:
    await _exercise(seed_snippet)


@pytest.mark.redis
async def test_snippet_3_on_redis_servers(
    redis_servers: None, seed_snippet: Callable[..., dict[str, Any]]
) -> None:
    await _exercise(seed_snippet)
