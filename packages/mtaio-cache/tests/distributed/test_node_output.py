"""CacheNode output in-process: streamed large replies, backpressure, caps; more commands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from mtaio.cache import CacheNode
from mtaio.cache._node import _is_loopback
from mtaio.cache._node_client import Client, ClientGone
from mtaio.cache._resp import RespParser
from mtaio.typing import ManualClock

KiB = 1 << 10


async def until(predicate: Callable[[], bool]) -> None:
    """Wait (at most 10 s) until ``predicate()`` holds, checking every 10 ms."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 10 s")


async def test_large_values_and_arrays_are_streamed_intact(clock: ManualClock) -> None:
    async with CacheNode("big", max_value_bytes=1 << 20, clock=clock) as node:
        host, port = node.address
        client = aioredis.Redis(host=host, port=port, protocol=2)
        try:
            big = bytes(range(256)) * 1024  # 256 KiB
            await client.set("big", big)
            await client.set("small", b"s")
            assert await client.get("big") == big
            assert await client.mget("big", "none", "small", "big") == [big, None, b"s", big]
            many = await client.mget(*["small"] * 70_000)  # one array past the flush size
            assert len(many) == 70_000 and set(many) == {b"s"}
            pipe = client.pipeline(transaction=False)
            for _ in range(20):
                pipe.get("big")
            assert await pipe.execute() == [big] * 20
        finally:
            await client.aclose()


async def test_a_client_that_leaves_replies_unread_is_disconnected(clock: ManualClock) -> None:
    async with CacheNode("slow", max_value_bytes=1 << 20, idle_timeout=0.3, clock=clock) as node:
        host, port = node.address
        setter = aioredis.Redis(host=host, port=port, protocol=2)
        await setter.set("big", b"x" * (1 << 20))
        _, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET big\r\n" * 64)  # 64 MiB of replies; read none of them
        try:
            await until(lambda: node.stats().dropped_clients == 1)
            assert await setter.ping()  # everyone else is served meanwhile
        finally:
            await setter.aclose()
            writer.close()


async def test_partial_requests_over_the_budget_drop_the_largest(clock: ManualClock) -> None:
    async with CacheNode(
        "budget", max_value_bytes=64 * KiB, max_buffered_bytes=100 * KiB, clock=clock
    ) as node:
        streams = []
        held = 0
        for size in (30 * KiB, 60 * KiB, 50 * KiB):  # the third passes 100 KiB in all
            r, w = await asyncio.open_connection(*node.address)
            w.write(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (64 * KiB) + b"x" * size)
            streams.append((r, w))
            held += size
            if held <= 100 * KiB:  # all of it is held before the next client sends
                await until(lambda: node.stats().buffered_bytes >= held)  # noqa: B023
        async with asyncio.timeout(5):
            assert await streams[1][0].read() == b""  # the 60 KiB one went
        assert node.stats().dropped_clients == 1
        assert node.stats().buffered_bytes <= 100 * KiB
        for _, w in streams:
            w.close()


async def test_more_commands(client: aioredis.Redis, clock: ManualClock) -> None:
    now = int(time.time())
    assert await client.set("a", b"1", exat=now + 1000)
    assert 990 <= await client.ttl("a") <= 1000
    assert await client.set("b", b"1", pxat=(now - 10) * 1000)  # in the past: set and gone
    assert await client.get("b") is None
    assert await client.expireat("a", now + 5000)
    assert await client.pexpireat("a", (now + 6000) * 1000)
    assert 5900 <= await client.ttl("a") <= 6000
    assert await client.expire("a", 7000, gt=True)
    assert not await client.expire("a", 8000, lt=True)
    assert await client.expire("a", 100, lt=True)
    assert not await client.expire("a", 50, gt=True)
    assert await client.persist("a")
    assert not await client.persist("a")
    assert not await client.expire("a", 10, gt=True)  # no ttl counts as infinite
    assert await client.expire("a", 10, lt=True)
    assert not await client.expire("missing", 10)
    assert await client.expire("a", 0)
    with pytest.raises(ResponseError, match="wrong number"):
        await client.execute_command("PERSIST")  # type: ignore[no-untyped-call]
    with pytest.raises(ResponseError, match="not an integer"):
        await client.execute_command("SCAN", "0", "COUNT", "x")  # type: ignore[no-untyped-call]
    with pytest.raises(ResponseError, match="pattern longer than"):
        await client.scan(0, match="?" * (16 * 1024 + 1))
    await client.set("k", b"v")
    assert await client.execute_command("SCAN", "0", "TYPE", "string", "MATCH", "*")  # type: ignore[no-untyped-call]
    assert await client.set("k", b"w", keepttl=True, get=True) == b"v"


def test_loopback_detection() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("cache.example")


class FakeTransport:
    def __init__(self) -> None:
        self.size = 0
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.size += len(data)

    def get_write_buffer_size(self) -> int:
        return self.size

    def abort(self) -> None:
        self.aborted = True


class FakeWriter:
    def __init__(self) -> None:
        self.transport = FakeTransport()

    async def drain(self) -> None:
        await asyncio.Event().wait()  # the peer never reads


def fake_client(max_output: int = 1000) -> tuple[Client, FakeTransport]:
    writer: Any = FakeWriter()
    client = Client(
        1, writer, RespParser(), authed=True, max_output=max_output, timeout=0.05, now=0.0
    )
    return client, writer.transport


async def test_pushes_keep_their_order_and_are_capped() -> None:
    client, transport = fake_client()
    client.busy = True
    client.queue(b"+OK\r\n")
    assert client.push(b"push")  # after the reply already produced
    assert client.out == [b"+OK\r\n", b"push"] and not transport.written
    client.busy = False
    client.push(b"now")
    assert transport.written == [b"now"]
    client.push(b"x" * 1000)
    assert transport.aborted and client.closed and client.dropped
    assert not client.push(b"ignored")
    assert len(transport.written) == 2
    assert repr(client) == "<Client 1>"


async def test_replies_over_the_cap_or_unread_end_the_client() -> None:
    client, transport = fake_client(max_output=100 * KiB)
    with pytest.raises(ClientGone):
        await client.send(b"x" * (200 * KiB))  # one reply element over the cap
    assert transport.aborted
    client, transport = fake_client(max_output=10 << 20)
    await client.send(b"x" * (200 * KiB))
    with pytest.raises(ClientGone, match="unread"):
        await client.flush()  # drain never completes within the timeout
    client, transport = fake_client()
    client.closed = True
    with pytest.raises(ClientGone):
        await client.flush()
