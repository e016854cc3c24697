"""One Channel behaviour, three transports: in-process, Redis Pub/Sub, Redis Streams.

The same tests run on each (cachetools' CacheTestMixin pattern): what a user relies on does
not change when the channel starts crossing processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mtaio.events import (
    Channel,
    ChannelClosedError,
    RedisPubSubTransport,
    RedisStreamsTransport,
    Transport,
)

MakeChannel = Callable[[], Awaitable[Channel[Any]]]


@pytest.fixture(params=["in-process", "pubsub", "streams"])
async def make_channel(request: pytest.FixtureRequest) -> AsyncIterator[MakeChannel]:
    kind: str = request.param
    made: list[Channel[Any]] = []
    url = "" if kind == "in-process" else request.getfixturevalue("redis_url")

    async def make() -> Channel[Any]:
        transport: Transport | None = None
        if kind == "pubsub":
            transport = RedisPubSubTransport(url)
        elif kind == "streams":
            transport = RedisStreamsTransport(url, block=0.05)
        channel: Channel[Any] = Channel("contract", transport=transport)
        made.append(channel)
        return channel

    before = asyncio.all_tasks()
    yield make
    for channel in made:
        await channel.close()
    # close() leaves no task behind, whatever the transport
    left = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
    assert left == set()


async def test_a_message_reaches_a_subscriber_of_its_topic(make_channel: MakeChannel) -> None:
    channel = await make_channel()
    sub = await channel.subscribe("order.created")
    await channel.publish({"id": 1}, topic="order.created", metadata={"by": "test"})
    message = await sub.receive(timeout=5)
    assert (message.data, message.topic, message.metadata) == (
        {"id": 1},
        "order.created",
        {"by": "test"},
    )


async def test_other_topics_do_not_arrive(make_channel: MakeChannel) -> None:
    channel = await make_channel()
    sub = await channel.subscribe("wanted")
    await channel.publish("no", topic="unwanted")
    await channel.publish("yes", topic="wanted")
    assert (await sub.receive(timeout=5)).data == "yes"
    assert sub.qsize() == 0


async def test_order_per_topic_is_kept(make_channel: MakeChannel) -> None:
    channel = await make_channel()
    sub = await channel.subscribe("seq")
    for i in range(200):
        await channel.publish(i, topic="seq")
    got = [(await sub.receive(timeout=5)).data for _ in range(200)]
    assert got == list(range(200))


async def test_every_subscriber_gets_every_message(make_channel: MakeChannel) -> None:
    channel = await make_channel()
    subs = [await channel.subscribe(["a", "b"]) for _ in range(3)]
    await channel.publish(1, topic="a")
    await channel.publish(2, topic="b")
    for sub in subs:
        assert [(await sub.receive(timeout=5)).data for _ in range(2)] == [1, 2]


async def test_a_second_channel_object_of_the_same_name_shares_nothing_locally_but_the_name(
    make_channel: MakeChannel,
) -> None:
    # In-process the objects are separate; across a transport the name is what is shared.
    channel = await make_channel()
    sub = await channel.subscribe("x")
    await channel.publish("m", topic="x")
    assert (await sub.receive(timeout=5)).data == "m"
    assert channel.stats().published == 1


async def test_a_cancelled_receive_leaves_the_subscriber_working(
    make_channel: MakeChannel,
) -> None:
    channel = await make_channel()
    sub = await channel.subscribe("c")
    waiting = asyncio.ensure_future(sub.receive())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await channel.publish("after", topic="c")
    assert (await sub.receive(timeout=5)).data == "after"


async def test_unsubscribe_ends_the_subscription_and_close_ends_the_channel(
    make_channel: MakeChannel,
) -> None:
    channel = await make_channel()
    sub = await channel.subscribe("u")
    other = await channel.subscribe("u")
    await sub.close()
    assert sub.closed
    await channel.publish("m", topic="u")
    assert (await other.receive(timeout=5)).data == "m"
    with pytest.raises(ChannelClosedError):
        await sub.receive(timeout=1)
    await channel.close()
    with pytest.raises(ChannelClosedError):
        await channel.publish("late", topic="u")
    with pytest.raises(ChannelClosedError):
        await other.receive(timeout=1)
    stats = channel.stats()
    assert stats.subscribers == 0
    if stats.transport is not None:
        assert stats.transport.subscriptions == 0
