"""The Pub/Sub transport: glob semantics kept, one connection, reconnect and gaps reported."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.events import (
    Channel,
    ChannelConnectionError,
    JsonSerializer,
    RedisPubSubTransport,
    Subscriber,
)
from mtaio.events._redis_pubsub import redis_glob
from mtaio.exceptions import ConfigurationError, DependencyError
from mtaio.testing import RedisServer

Eventually = Callable[..., Awaitable[None]]


async def _drain(sub: Subscriber[Any], marker: str = "end") -> list[Any]:
    """Receive until the marker message: what arrived before it, in order."""
    got: list[str | None] = []
    while True:
        message = await sub.receive(timeout=5)
        if message.data == marker:
            return got
        got.append(message.topic)


def test_redis_glob_is_a_superset_and_says_when_it_is_exact() -> None:
    assert redis_glob("user.**") == ("user.*", True)
    assert redis_glob("user.*") == ("user.*", False)
    assert redis_glob("a?c") == ("a?c", False)
    assert redis_glob("room[1].**") == ("room\\[1\\].*", True)
    assert redis_glob("*") == ("*", True)
    assert redis_glob("back\\slash") == ("back\\\\slash", True)


async def test_patterns_keep_the_channels_glob_semantics_where_redis_differs(
    redis_url: str,
) -> None:
    transport = RedisPubSubTransport(redis_url)
    async with Channel[str]("globs", transport=transport) as channel:
        one_segment = await channel.subscribe("user.*")  # Redis' * would cross the dot
        any_depth = await channel.subscribe("user.**")  # agrees with Redis' *
        one_char = await channel.subscribe("a?c")  # Redis' ? would match the dot
        brackets = await channel.subscribe("room[1].*")  # [ ] are literals here
        all_topics = await channel.subscribe("*")
        for topic in ("user.login", "user.login.failed", "a.c", "abc", "room[1].x", "room1.x"):
            await channel.publish("m", topic=topic)
        await channel.publish("end", topic="user.end")
        await channel.publish("end", topic="abc")
        await channel.publish("end", topic="room[1].end")
        assert await _drain(one_segment) == ["user.login"]
        assert await _drain(any_depth) == ["user.login", "user.login.failed"]
        assert await _drain(one_char) == ["abc"]
        assert await _drain(brackets) == ["room[1].x"]
        assert (await all_topics.receive(timeout=5)).topic == "user.login"
        # "user.*" and "user.**" share one PSUBSCRIBE; one connection carries them all
        assert transport.stats().subscriptions == 4
        raw = aioredis.Redis.from_url(redis_url)
        try:
            assert len(await raw.client_list(_type="pubsub")) == 1
        finally:
            await raw.aclose()


async def test_overlapping_patterns_deliver_each_message_once(redis_url: str) -> None:
    async with Channel[int]("overlap", transport=RedisPubSubTransport(redis_url)) as channel:
        narrow = await channel.subscribe(["a.*", "a.**", "a.b"])
        wide = await channel.subscribe("a.**")
        await channel.publish(1, topic="a.b")
        await channel.publish(2, topic="a.b")
        assert [(await narrow.receive(timeout=5)).data for _ in range(2)] == [1, 2]
        assert [(await wide.receive(timeout=5)).data for _ in range(2)] == [1, 2]
        await asyncio.sleep(0.1)  # a duplicate would have arrived by now
        assert narrow.qsize() == wide.qsize() == 0
        assert channel.stats().missed == 0


async def test_concurrent_publishes_from_one_process_arrive_all_and_in_order(
    redis_url: str,
) -> None:
    # Concurrent publishes once went out on several pooled connections, so Redis could
    # receive them out of order and the reader dropped the late ones as duplicates.
    async with (
        Channel[int]("ordered", transport=RedisPubSubTransport(redis_url)) as receiver,
        Channel[int]("ordered", transport=RedisPubSubTransport(redis_url)) as sender,
    ):
        sub = await receiver.subscribe("n", maxsize=2000)
        counts = await asyncio.gather(*(sender.publish(i, topic="n") for i in range(1000)))
        assert counts == [1] * 1000
        got = [(await sub.receive(timeout=5)).data for _ in range(1000)]
        assert got == list(range(1000))
        assert receiver.stats().missed == 0
        assert sender.stats().published == 1000


async def test_close_with_a_hung_server_fails_pending_publishes(
    redis_server: RedisServer,
) -> None:
    channel = Channel[int]("hung", transport=RedisPubSubTransport(redis_server.url))
    await channel.publish(0, topic="t")  # connected
    redis_server.pause()
    try:
        pending = [asyncio.ensure_future(channel.publish(i, topic="t")) for i in range(3)]
        await asyncio.sleep(0)
        await asyncio.wait_for(channel.close(), timeout=10)
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, ChannelConnectionError) for r in results), results
    finally:
        redis_server.resume()


async def test_publishers_in_other_channel_objects_reach_subscribers_without_topics(
    redis_url: str,
) -> None:
    async with (
        Channel[str]("shared", transport=RedisPubSubTransport(redis_url)) as receiver,
        Channel[str]("shared", transport=RedisPubSubTransport(redis_url)) as sender,
    ):
        everything = await receiver.subscribe()
        only_topics = await receiver.subscribe("**")
        assert await sender.publish("untitled") == 1  # one connection received it
        await sender.publish("titled", topic="t")
        assert [(await everything.receive(timeout=5)).data for _ in range(2)] == [
            "untitled",
            "titled",
        ]
        assert (await only_topics.receive(timeout=5)).data == "titled"


@dataclass
class Order:
    id: int
    item: str


async def test_a_typed_channel_with_a_serializer_gets_its_type_back(redis_url: str) -> None:
    orders = JsonSerializer[Order](encode=asdict, decode=lambda d: Order(**d))
    transport = RedisPubSubTransport(redis_url)
    async with Channel[Order]("orders", transport=transport, serializer=orders) as channel:
        sub = await channel.subscribe("order.created")
        await channel.publish(Order(1, "book"), topic="order.created")
        message = await sub.receive(timeout=5)
        assert message.data == Order(1, "book")


async def test_malformed_messages_are_counted_and_dropped(redis_url: str) -> None:
    transport = RedisPubSubTransport(redis_url, prefix="p")
    async with Channel[int]("bad", transport=transport) as channel:
        sub = await channel.subscribe("t")
        raw = aioredis.Redis.from_url(redis_url)
        try:
            for junk in (b"no header", b"[1]\n1", b'{"t":"t","p":"x","s":"one"}\n1', b"\xff\n"):
                await raw.publish("p:bad:t:t", junk)
            # a well-formed frame whose payload is not JSON
            await raw.publish("p:bad:t:t", b'{"t":"t","p":"x","s":1}\nnot json')
            # a frame claiming a topic its channel does not carry
            await raw.publish("p:bad:t:t", b'{"t":"other","p":"x","s":2}\n1')
        finally:
            await raw.aclose()
        await channel.publish(7, topic="t")
        assert (await sub.receive(timeout=5)).data == 7
        assert transport.stats().malformed == 6


async def test_redis_restarted_gap_reported_and_delivery_resumes(
    redis_server: RedisServer, eventually: Eventually
) -> None:
    if not redis_server.running:
        redis_server.start()
    url = redis_server.url
    gaps: list[tuple[str | None, int]] = []
    receiving = RedisPubSubTransport(url, max_backoff=0.2)
    sending = RedisPubSubTransport(url)
    async with (
        Channel[int]("restart", transport=receiving) as receiver,
        Channel[int]("restart", transport=sending) as sender,
    ):
        sub = await receiver.subscribe("t", on_gap=lambda topic, n: gaps.append((topic, n)))
        await sender.publish(1, topic="t")
        assert (await sub.receive(timeout=5)).data == 1
        redis_server.kill()
        with pytest.raises(ChannelConnectionError):  # a lost connection is never silent
            await sender.publish(2, topic="t")
        redis_server.start()
        await eventually(lambda: receiving.stats().connected and receiving.stats().reconnects)
        await sender.publish(3, topic="t")
        message = await sub.receive(timeout=5)
        assert message.data == 3
        assert gaps == [("t", 1)]
        assert sub.stats().missed == 1
        assert receiver.stats().missed == 1
        assert receiving.stats().reconnects == 1


async def test_bad_configuration_is_refused(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisPubSubTransport(redis_url, prefix="a{b}")
    with pytest.raises(ConfigurationError, match="max_backoff"):
        RedisPubSubTransport(redis_url, max_backoff=0)
    with pytest.raises(ConfigurationError, match="redis"):
        RedisPubSubTransport("http://localhost")
    transport = RedisPubSubTransport(redis_url)
    async with Channel[int]("c", transport=transport) as channel:
        with pytest.raises(ConfigurationError, match="group"):
            await channel.subscribe("t", group="g")
        with pytest.raises(ConfigurationError, match="metadata"):
            await channel.publish(1, topic="t", metadata={"x": object()})
        with pytest.raises(ConfigurationError, match="pattern"):
            await channel.publish(1, topic="t.*")
        assert channel.subscriber_count == 0
        await channel.subscribe("t")
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(DependencyError, match=r"mtaio-events\[redis\]"):
        RedisPubSubTransport(redis_url)
