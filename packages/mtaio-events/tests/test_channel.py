import asyncio
from typing import Any

import pytest

from mtaio.events import (
    Channel,
    ChannelClosedError,
    ChannelStats,
    Message,
    Subscriber,
    SubscriberStats,
)
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, EventError


async def test_publish_routes_by_topic_patterns() -> None:
    channel = Channel[str]("events")
    users = await channel.subscribe(["user.*", "system.*"])
    everything = await channel.subscribe()
    logins = await channel.subscribe("user.login")
    assert channel.subscriber_count == 3
    assert await channel.publish("a", topic="user.login") == 3
    assert await channel.publish("b", topic="system.boot") == 2
    assert await channel.publish("c", topic="billing.paid") == 1
    assert await channel.publish("d") == 1
    assert [(await users.receive()).data for _ in range(2)] == ["a", "b"]
    assert [m.data for m in [everything.receive_nowait() for _ in range(4)] if m] == list("abcd")
    message = await logins.receive()
    assert message == Message("a", "user.login", {})
    assert logins.receive_nowait() is None
    assert users.matches("user.x") and not users.matches(None)


async def test_message_fields_and_metadata() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe()
    await channel.publish(1, "t", metadata={"k": "v"})
    message = await sub.receive()
    assert (message.data, message.topic, message.metadata) == (1, "t", {"k": "v"})
    assert repr(message) == "Message(1, topic='t', metadata={'k': 'v'})"
    assert message != 1
    with pytest.raises(TypeError):
        hash(message)


async def test_async_iteration_ends_when_channel_closes_after_draining() -> None:
    async with Channel[int]("c") as channel:
        sub = await channel.subscribe()
        for i in range(3):
            await channel.publish(i)
    assert channel.closed
    assert [m.data async for m in sub] == [0, 1, 2]
    with pytest.raises(ChannelClosedError, match="closed"):
        await sub.receive()
    with pytest.raises(ChannelClosedError):
        await channel.publish(9)
    with pytest.raises(ChannelClosedError):
        await channel.subscribe()
    await channel.close()  # idempotent


async def test_waiting_receiver_is_woken_by_close() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe()
    task = asyncio.create_task(sub.receive())
    await asyncio.sleep(0)
    await channel.close()
    with pytest.raises(ChannelClosedError):
        await task
    assert isinstance(ChannelClosedError("x"), EventError)


async def test_consumer_task_receives_as_published() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe()

    async def consume() -> list[int]:
        return [m.data async for m in sub]

    task = asyncio.create_task(consume())
    for i in range(5):
        await channel.publish(i)
        await asyncio.sleep(0)
    await channel.close()
    assert await task == [0, 1, 2, 3, 4]


async def test_unsubscribe_and_context_manager() -> None:
    channel = Channel[int]()
    async with await channel.subscribe() as sub:
        assert channel.subscriber_count == 1
        await channel.publish(1)
    assert sub.closed
    assert channel.subscriber_count == 0
    assert await channel.publish(2) == 0
    assert (await sub.receive()).data == 1  # queued before leaving
    with pytest.raises(ChannelClosedError, match="unsubscribed"):
        await sub.receive()
    await sub.close()
    sub.unsubscribe()  # idempotent, sync
    other = await channel.subscribe()
    await other.close()
    assert other.closed
    assert channel.subscriber_count == 0


@pytest.mark.looptime
async def test_receive_timeout() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe()
    with pytest.raises(TimeoutError):
        await sub.receive(timeout=5)
    await channel.publish(1)
    assert (await sub.receive(timeout=5)).data == 1


async def test_drop_oldest_counts_drops() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe(maxsize=2, overflow="drop_oldest")
    for i in range(5):
        assert await channel.publish(i) == 1
    assert [sub.receive_nowait() for _ in range(2)] == [Message(3), Message(4)]
    assert sub.stats() == SubscriberStats(received=2, queued=0, dropped=3, disconnected=False)
    assert channel.stats().dropped == 3


async def test_drop_newest() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe(maxsize=2, overflow="drop_newest")
    results = [await channel.publish(i) for i in range(4)]
    assert results == [1, 1, 0, 0]
    assert [(await sub.receive()).data for _ in range(2)] == [0, 1]
    assert sub.stats().dropped == 2


async def test_disconnect_slow_subscriber() -> None:
    channel = Channel[int]()
    slow = await channel.subscribe(maxsize=1, overflow="disconnect")
    fast = await channel.subscribe(maxsize=10)
    assert await channel.publish(1) == 2
    assert await channel.publish(2) == 1
    assert slow.closed
    assert channel.subscriber_count == 1
    assert (await slow.receive()).data == 1
    with pytest.raises(ChannelClosedError, match="disconnected"):
        await slow.receive()
    assert slow.stats().disconnected
    assert channel.stats() == ChannelStats(
        published=2, delivered=3, dropped=0, disconnected=1, subscribers=1
    )
    assert fast.qsize() == 2


async def test_block_policy_waits_only_for_that_subscriber() -> None:
    channel = Channel[int]()
    blocking = await channel.subscribe(maxsize=1, overflow="block")
    other = await channel.subscribe(maxsize=1, overflow="drop_oldest")
    await channel.publish(1)
    publisher = asyncio.create_task(channel.publish(2))
    await asyncio.sleep(0)
    assert not publisher.done()
    # the other subscriber already got message 2 while the publisher waits
    assert other.receive_nowait() == Message(2)
    assert (await blocking.receive()).data == 1
    assert await publisher == 2
    assert (await blocking.receive()).data == 2


async def test_blocked_publisher_is_released_by_close() -> None:
    channel = Channel[int]()
    await channel.subscribe(maxsize=1, overflow="block")
    await channel.publish(1)
    publisher = asyncio.create_task(channel.publish(2))
    await asyncio.sleep(0)
    await channel.close()
    assert await publisher == 0


async def test_cancelled_blocked_publisher_leaves_no_waiter() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe(maxsize=1, overflow="block")
    await channel.publish(1)
    publisher = asyncio.create_task(channel.publish(2))
    await asyncio.sleep(0)
    publisher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publisher
    assert not sub._putters
    assert (await sub.receive()).data == 1


async def test_cancelled_receiver_leaves_no_waiter_and_passes_message_on() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe()
    first = asyncio.create_task(sub.receive())
    second = asyncio.create_task(sub.receive())
    await asyncio.sleep(0)
    await channel.publish(1)  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` gets the message
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await asyncio.wait_for(second, 1)).data == 1
    assert not sub._getters


async def test_reprs() -> None:
    channel = Channel[int]("c")
    sub = await channel.subscribe(["a.*"], maxsize=3)
    assert repr(channel) == "<Channel 'c' subscribers=1 open>"
    assert repr(sub) == "<Subscriber topics=('a.*',) queued=0/3 overflow='drop_oldest' open>"
    await channel.close()
    assert repr(sub).endswith("closed>")
    assert isinstance(sub, Subscriber)


async def test_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="name"):
        Channel[int]("")
    channel = Channel[int]()
    with pytest.raises(ConfigurationError, match="maxsize"):
        await channel.subscribe(maxsize=0)
    with pytest.raises(ConfigurationError, match="overflow"):
        await channel.subscribe(overflow="explode")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="topics"):
        await channel.subscribe([""])
    with pytest.raises(ConfigurationTypeError, match="topics"):
        await channel.subscribe(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="topics"):
        await channel.subscribe([5])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="topic"):
        await channel.publish(1, topic="")
    with pytest.raises(ConfigurationTypeError, match="topic"):
        await channel.publish(1, topic=["x"])  # type: ignore[arg-type]
    sub = await channel.subscribe()
    with pytest.raises(ConfigurationError, match="timeout"):
        await sub.receive(timeout=-1)
    assert channel.subscriber_count == 1


async def test_route_cache_is_bounded() -> None:
    channel = Channel[Any]()
    await channel.subscribe(["t.*"], maxsize=1)
    for i in range(5000):
        await channel.publish(i, topic=f"t.{i}")
    assert len(channel._routes) <= 4096


async def test_cancelled_woken_publisher_passes_room_on() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe(maxsize=1, overflow="block")
    await channel.publish(0)
    first = asyncio.create_task(channel.publish(1))
    second = asyncio.create_task(channel.publish(2))
    await asyncio.sleep(0)
    assert sub.receive_nowait() == Message(0)  # room: wakes `first`...
    first.cancel()  # ...cancelled before it runs: `second` takes the room
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == 1
    assert (await sub.receive()).data == 2
    assert not sub._putters


async def test_blocked_publisher_wakes_a_waiting_receiver() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe(maxsize=1, overflow="block")
    await channel.publish(0)
    publisher = asyncio.create_task(channel.publish(1))
    await asyncio.sleep(0)  # publisher waits for room

    async def drain_two() -> list[int]:
        return [(await sub.receive()).data, (await sub.receive()).data]

    assert await asyncio.wait_for(drain_two(), 1) == [0, 1]
    assert await publisher == 1


async def test_offer_on_full_drop_oldest_subscriber() -> None:
    channel = Channel[int]()
    sub = await channel.subscribe(maxsize=1, overflow="drop_oldest")
    assert sub._offer(Message(1)) == 1
    assert sub._offer(Message(2)) == 1
    assert sub.receive_nowait() == Message(2)
    assert channel.stats().dropped == 1
