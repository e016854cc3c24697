"""Fixtures of the distributed-cache tests: redis-server processes, CacheNode clusters.

``redis-server`` tests skip loudly when the binary is missing, unless the environment sets
``MTAIO_REQUIRE_REDIS=1`` (CI does), which turns that skip into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.cache import CacheNode
from mtaio.typing import ManualClock

REDIS_SERVER = shutil.which("redis-server")
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


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


def _wait_answering(port: int, proc: subprocess.Popen[bytes] | None, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not answer in time")
        time.sleep(0.01)


class RedisProcess:
    """One redis-server process on a loopback port: start, kill, restart, pause, resume."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_answering(self.port, self.proc, time.monotonic() + 5.0)

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


class Cluster:
    """Nodes of one backend, with the controls the fault tests need."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.redis: list[RedisProcess] = []
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
                proc = RedisProcess(binary, _free_port())
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


@pytest.fixture
async def cluster(backend: str) -> AsyncIterator[Cluster]:
    """Three nodes of the current backend."""
    c = Cluster(backend)
    try:
        await c.start(3)
        yield c
    finally:
        await c.close()


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
def redis_process() -> Iterator[Callable[[], RedisProcess]]:
    """Start extra redis-server processes; every one is killed at teardown."""
    started: list[RedisProcess] = []

    def start() -> RedisProcess:
        proc = RedisProcess(require_redis_server(), _free_port())
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
    return _free_port


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
