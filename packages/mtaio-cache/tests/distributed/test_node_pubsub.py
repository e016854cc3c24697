"""CacheNode Pub/Sub against redis-py's asyncio PubSub client (and raw RESP2)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from mtaio.cache import CacheNode

from .test_node import raw_exchange


async def next_message(pubsub: Any) -> dict[str, Any]:
    async with asyncio.timeout(2.0):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2.0)
            if message is not None:
                return dict(message)


async def test_redis_py_pubsub_channels_and_patterns(
    node: CacheNode, client: aioredis.Redis
) -> None:
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe("news", "sport")
        await pubsub.psubscribe("user:[0-9]*")
        for _ in range(3):  # the three confirmations
            confirmation = await pubsub.get_message(timeout=2.0)
            assert confirmation is not None
            assert confirmation["type"] in ("subscribe", "psubscribe")
        assert node.stats().channels == 2 and node.stats().patterns == 1
        assert await client.publish("news", b"hello") == 1
        message = await next_message(pubsub)
        assert message == {"type": "message", "pattern": None, "channel": b"news", "data": b"hello"}
        assert await client.publish("user:42", b"x") == 1
        message = await next_message(pubsub)
        assert message["type"] == "pmessage"
        assert message["pattern"] == b"user:[0-9]*" and message["channel"] == b"user:42"
        assert await client.publish("user:x", b"nobody") == 0
        assert await client.publish("nobody", b"x") == 0
        assert await client.pubsub_numsub("news", "none") == [(b"news", 1), (b"none", 0)]
        assert await client.pubsub_numpat() == 1
        assert await client.pubsub_channels("n*") == [b"news"]
        await pubsub.unsubscribe("news")
        await pubsub.punsubscribe()
        for _ in range(2):
            assert await pubsub.get_message(timeout=2.0) is not None
        assert await client.publish("news", b"gone") == 0
        assert await client.publish("sport", b"goal") == 1
        assert (await next_message(pubsub))["data"] == b"goal"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    for _ in range(100):  # the node forgets a subscriber that left
        if node.stats().channels == 0:
            break
        await asyncio.sleep(0.01)
    assert node.stats().channels == 0 and node.stats().patterns == 0


async def test_subscribed_mode_allows_only_pubsub_commands_and_ping(node: CacheNode) -> None:
    reply = await raw_exchange(
        node,
        b"SUBSCRIBE a b\r\nGET k\r\nPING\r\nPING hi\r\nUNSUBSCRIBE\r\nUNSUBSCRIBE\r\n"
        b"PING\r\nQUIT\r\n",
    )
    assert reply == (
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        b"RESET are allowed in this context\r\n"
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        b"+PONG\r\n+OK\r\n"
    )


async def test_pubsub_argument_errors_and_reset(node: CacheNode, client: aioredis.Redis) -> None:
    long = "*" * (16 * 1024 + 1)
    for args in [
        ("SUBSCRIBE",),
        ("PSUBSCRIBE",),
        ("PSUBSCRIBE", "ok*", long),
        ("PUBSUB", "CHANNELS", long),
        ("PUBLISH", "a"),
        ("PUBSUB", "NOPE"),
    ]:
        with pytest.raises(ResponseError):
            await client.execute_command(*args)  # type: ignore[no-untyped-call]
    reply = await raw_exchange(
        node, b"PSUBSCRIBE p*\r\nPUNSUBSCRIBE x\r\nRESET\r\nGET k\r\nPUNSUBSCRIBE\r\nQUIT\r\n"
    )
    assert reply == (
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:1\r\n"
        b"*3\r\n$12\r\npunsubscribe\r\n$1\r\nx\r\n:1\r\n"
        b"+RESET\r\n$-1\r\n"
        b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n+OK\r\n"
    )


async def test_a_subscriber_that_does_not_read_is_disconnected_past_its_output_cap() -> None:
    async with CacheNode("ps", max_output_bytes=256 << 10, max_value_bytes=65536) as node:
        host, port = node.address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"SUBSCRIBE firehose\r\n")
        await reader.readuntil(b":1\r\n")  # subscribed; from now on it reads nothing
        publisher = aioredis.Redis(host=host, port=port, protocol=2)
        other = aioredis.Redis(host=host, port=port, protocol=2)
        listener = other.pubsub()
        try:
            await listener.subscribe("firehose")
            payload = b"x" * 60_000
            delivered = 0
            async with asyncio.timeout(10):
                for _ in range(400):
                    delivered = await publisher.publish("firehose", payload)
                    assert (await next_message(listener))["data"] == payload  # a reader keeps up
                    if delivered == 1:
                        break
            assert delivered == 1, "the slow subscriber was never disconnected"
            assert node.stats().dropped_clients == 1
            async with asyncio.timeout(2):
                assert await publisher.ping()
            writer.close()
        finally:
            await listener.aclose()  # type: ignore[no-untyped-call]
            await publisher.aclose()
            await other.aclose()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
async def test_redis_cli_subscribes(node: CacheNode, client: aioredis.Redis) -> None:
    host, port = node.address
    proc = await asyncio.create_subprocess_exec(
        "redis-cli", "-h", host, "-p", str(port), "SUBSCRIBE", "ch", stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(5):
            # redis-cli prints its confirmation once subscribed: publish after it.
            seen = await proc.stdout.readuntil(b"ch\n")
            assert await client.publish("ch", b"hi there") == 1
            while b"hi there" not in seen:
                seen += await proc.stdout.read(100)
        assert b"message" in seen and b"ch" in seen
    finally:
        proc.kill()
        await proc.wait()
