"""LayeredCache across real OS processes, on redis-server and on a CacheNode process.

* A writer sets one key 10k times while two readers read it: no reader ever returns a
  value older than the latest one acknowledged before its read started, unless that
  write's invalidation had not reached it yet; the invalidation delay is measured. A
  third reader is SIGKILLed mid-run; the others are unaffected.
* The invalidation connections are cut from the server side (``CLIENT KILL TYPE pubsub``)
  while a writer writes and two readers read: both drop their local tiers, reconnect, and
  never serve a value older than the latest acknowledged before the disconnect.
* A tag with 100k members, read into the local tiers of two processes, is invalidated by a
  third: every member is gone from every tier.

The default run keeps every scenario's shape at a tenth of the size to keep CI short
(3000 writes, a tag of 10k members); ``MTAIO_LAYERED_WRITES=10000`` and
``MTAIO_TAG_MEMBERS=100000`` run the full figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import pytest

from mtaio.cache.testing import RedisServer

from .conftest import require_redis_server

# Real OS processes and wall-clock runs: `check` runs these on Python 3.11 only.
pytestmark = pytest.mark.slow


CHILD = Path(__file__).with_name("layered_child.py")
NODE_CHILD = Path(__file__).with_name("node_child.py")
WRITES = int(os.environ.get("MTAIO_LAYERED_WRITES", "3000"))
MEMBERS = int(os.environ.get("MTAIO_TAG_MEMBERS", "10000"))
DEADLINE = 120.0


@pytest.fixture(params=["node", pytest.param("redis", marks=pytest.mark.redis)])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, int]]:
    """One server of the backend, in its own process: its address."""
    if request.param == "redis":
        proc = RedisServer(binary=require_redis_server())
        proc.start()
        try:
            yield proc.address
        finally:
            proc.kill()
        return
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        str(NODE_CHILD),
        json.dumps({"node": {"max_clients": 64}}),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert node.stdout is not None
        line = await asyncio.wait_for(node.stdout.readline(), 30)
        assert line.startswith(b"PORT "), line
        yield ("127.0.0.1", int(line.split()[1]))
    finally:
        if node.returncode is None:
            node.kill()
        await node.wait()


class Children:
    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, role: str, address: tuple[str, int], shm: str, count: int) -> int:
        config = {
            "role": role,
            "nodes": [list(address)],
            "shm": shm,
            "count": count,
            "deadline": DEADLINE,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.procs.append(proc)
        return len(self.procs) - 1

    async def ready_then_go(self) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"READY", line
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()

    async def result(self, i: int) -> dict[str, Any]:
        proc = self.procs[i]
        assert proc.stdout is not None
        out = await asyncio.wait_for(proc.stdout.read(), DEADLINE + 30)
        assert await proc.wait() == 0
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    async def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


@pytest.fixture
async def children() -> AsyncIterator[Children]:
    c = Children()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def shm() -> Any:
    block = shared_memory.SharedMemory(create=True, size=8 * (WRITES + 1))
    assert block.buf is not None
    block.buf[:] = bytes(len(block.buf))
    try:
        yield block
    finally:
        block.close()
        block.unlink()


async def test_readers_never_serve_older_than_the_invalidation_delay(
    server: tuple[str, int], children: Children, shm: Any
) -> None:
    writer = await children.start("writer", server, shm.name, WRITES)
    readers = [await children.start("reader", server, shm.name, WRITES) for _ in range(2)]
    victim = await children.start("reader", server, shm.name, WRITES)
    await children.ready_then_go()
    acks = memoryview(shm.buf).cast("d")  # set by the writer process
    try:
        async with asyncio.timeout(DEADLINE):
            while acks[WRITES // 3] == 0.0:  # noqa: ASYNC110 - a third of the writes done
                await asyncio.sleep(0.01)
        os.kill(children.procs[victim].pid, signal.SIGKILL)
        await children.result(writer)
        assert acks[WRITES] > 0.0, "the writer did not finish its writes in time"
        results = [await children.result(i) for i in readers]
    finally:
        del acks
    assert await children.procs[victim].wait() == -signal.SIGKILL
    for r in results:
        assert r["violations"] == 0, r
        assert r["reads"] > 0 and r["local_hits"] > 0, r
        assert r["received"] == WRITES, r  # every invalidation reached every reader
        print(
            f"\nreader: {r['reads']} reads, {r['stale']} within the invalidation delay, "
            f"delay p50 {r['delay_p50'] * 1000:.2f} ms p99 {r['delay_p99'] * 1000:.2f} ms"
        )


async def test_a_tag_of_100k_members_leaves_every_tier(
    server: tuple[str, int], children: Children, shm: Any
) -> None:
    tagger = await children.start("tagger", server, shm.name, MEMBERS)
    readers = [await children.start("tag_reader", server, shm.name, MEMBERS) for _ in range(2)]
    await children.ready_then_go()
    await children.result(tagger)
    for i in readers:
        r = await children.result(i)
        assert r["filled"] == MEMBERS, r
        assert r["local_before"] == MEMBERS, r
        assert r["local_after"] == 0, r
        assert r["left"] == 0, r


@pytest.mark.redis
async def test_client_kill_drops_local_tiers_and_nothing_stale_is_served(
    children: Children, shm: Any
) -> None:
    import redis.asyncio as aioredis

    proc = RedisServer(binary=require_redis_server())
    proc.start()
    admin = aioredis.Redis(host=proc.address[0], port=proc.address[1], protocol=2)
    try:
        writer = await children.start("seq_writer", proc.address, shm.name, WRITES // 2)
        readers = [
            await children.start("kill_reader", proc.address, shm.name, WRITES // 2)
            for _ in range(2)
        ]
        await children.ready_then_go()
        acks = memoryview(shm.buf).cast("d")  # set by the writer process
        try:
            async with asyncio.timeout(DEADLINE):
                while acks[WRITES // 6] == 0.0:  # noqa: ASYNC110 - a third of the writes
                    await asyncio.sleep(0.01)
            killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
            assert killed >= 3  # the writer's and both readers' subscriptions
            await children.result(writer)
            results = [await children.result(i) for i in readers]
        finally:
            del acks
    finally:
        await admin.aclose()
        proc.kill()
    for r in results:
        assert r["violations"] == 0, r
        assert r["flushes"] >= 1, r  # the local tier was dropped at the disconnect
        assert r["connected"], r  # and the subscription came back
        assert r["local_hits"] > 0, r
        print(f"\nreader after CLIENT KILL: {r}")
