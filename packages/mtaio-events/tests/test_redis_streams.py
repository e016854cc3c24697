"""The Streams transport: broadcast starts, groups, redelivery, dead letters, backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.events import Channel, ChannelConnectionError, RedisStreamsTransport
from mtaio.exceptions import ConfigurationError
from mtaio.testing import RedisServer

Eventually = Callable[..., Awaitable[None]]


def _transport(url: str, **options: Any) -> RedisStreamsTransport:
    options.setdefault("block", 0.05)
    return RedisStreamsTransport(url, **options)


async def test_broadcast_starts_at_dollar_zero_or_a_saved_id(redis_url: str) -> None:
    async with Channel[int]("b", transport=_transport(redis_url)) as channel:
        for i in range(3):
            await channel.publish(i, topic="t")
        from_start = await channel.subscribe("t", start="0")
        only_new = await channel.subscribe("t")
        await channel.publish(3, topic="t")
        history = [await from_start.receive(timeout=5) for _ in range(4)]
        assert [m.data for m in history] == [0, 1, 2, 3]
        assert (await only_new.receive(timeout=5)).data == 3
        saved = history[1].id
        assert saved is not None
        resumed = await channel.subscribe("t", start=saved)
        assert [(await resumed.receive(timeout=5)).data for _ in range(2)] == [2, 3]


async def test_the_stream_is_bounded_by_maxlen(redis_url: str) -> None:
    transport = _transport(redis_url, maxlen=10)
    async with Channel[int]("bounded", transport=transport) as channel:
        for i in range(500):
            await channel.publish(i, topic="t")
        raw = aioredis.Redis.from_url(redis_url)
        try:
            length = await raw.xlen(transport.stream_key(channel, "t"))
        finally:
            await raw.aclose()
        assert 10 <= length < 500  # MAXLEN ~: trimmed by whole macro nodes


async def test_a_group_shares_messages_between_consumers_and_acks_them(redis_url: str) -> None:
    transport = _transport(redis_url)
    async with Channel[int]("jobs", transport=transport) as channel:
        a = await channel.subscribe("work", group="g", consumer="a", maxsize=5)
        b = await channel.subscribe("work", group="g", consumer="b", maxsize=5)
        for i in range(20):
            await channel.publish(i, topic="work")
        seen: list[int] = []

        async def consume(sub: Any) -> None:
            while len(seen) < 20:
                try:
                    message = await sub.receive(timeout=0.5)
                except TimeoutError:
                    continue
                seen.append(message.data)

        await asyncio.wait_for(asyncio.gather(consume(a), consume(b)), 10)
        assert sorted(seen) == list(range(20))  # each once
        a.receive_nowait()  # asks for more: acknowledges what it held
        b.receive_nowait()
        await a.close()
        await b.close()
        assert await transport.pending(channel, "work", "g") == 0


async def test_explicit_ack_without_auto_ack(redis_url: str) -> None:
    transport = _transport(redis_url)
    async with Channel[str]("manual", transport=transport) as channel:
        sub = await channel.subscribe("t", group="g", auto_ack=False)
        await channel.publish("x", topic="t")
        await channel.publish("y", topic="t")
        first = await sub.receive(timeout=5)
        await sub.receive(timeout=5)  # auto_ack=False: asking for more acknowledges nothing
        assert await transport.pending(channel, "t", "g") == 2
        await first.ack()
        await first.ack()  # idempotent
        assert await transport.pending(channel, "t", "g") == 1


async def test_an_unacknowledged_message_is_redelivered_after_the_idle_timeout(
    redis_url: str,
) -> None:
    transport = _transport(redis_url, claim_idle=0.2)
    async with Channel[str]("crash", transport=transport) as channel:
        dying = await channel.subscribe("t", group="g", consumer="dying")
        await channel.publish("job", topic="t")
        taken = await dying.receive(timeout=5)
        assert taken.deliveries == 1
        await dying.close()  # it never acknowledged: as if the process died holding it
        survivor = await channel.subscribe("t", group="g", consumer="survivor")
        again = await survivor.receive(timeout=5)
        assert (again.data, again.id, again.deliveries) == ("job", taken.id, 2)
        assert transport.stats().redelivered == 1


async def test_a_message_that_always_fails_ends_in_the_dead_letter_stream(
    redis_url: str, eventually: Eventually
) -> None:
    transport = _transport(redis_url, claim_idle=0.1, max_deliveries=3)
    async with Channel[str]("poison", transport=transport) as channel:
        sub = await channel.subscribe("t", group="g", auto_ack=False)
        await channel.publish("poison", topic="t")
        await channel.publish("fine", topic="t")
        deliveries = []
        async with asyncio.timeout(10):
            while True:
                message = await sub.receive()
                if message.data == "fine":
                    await message.ack()
                    continue
                deliveries.append(message.deliveries)  # "handled", failing: never acked
                if len(deliveries) == 3:
                    break
        await eventually(lambda: transport.stats().dead_lettered)
        assert deliveries == [1, 2, 3]
        raw = aioredis.Redis.from_url(redis_url)
        try:
            dead: Any = await raw.xrange(transport.dead_letter_key(channel))
        finally:
            await raw.aclose()
        assert len(dead) == 1
        fields = dead[0][1]
        assert fields[b"deliveries"] == b"4" and fields[b"group"] == b"g"
        assert fields[b"frame"].endswith(b'\n"poison"')
        assert await transport.pending(channel, "t", "g") == 0


async def test_a_group_consumer_reads_no_more_than_its_queue_holds(
    redis_url: str, eventually: Eventually
) -> None:
    transport = _transport(redis_url)
    async with Channel[int]("pressure", transport=transport) as channel:
        slow = await channel.subscribe("t", group="g", maxsize=3)
        for i in range(50):
            await channel.publish(i, topic="t")
        await eventually(lambda: slow.qsize() == 3)
        await asyncio.sleep(0.2)  # more reads would have happened by now
        assert slow.qsize() == 3
        assert await transport.pending(channel, "t", "g") == 3  # the rest waits in Redis
        assert (await slow.receive()).data == 0

        async def four_pending() -> bool:
            return await transport.pending(channel, "t", "g") == 4

        await eventually(four_pending)
        assert slow.stats().dropped == 0


async def test_malformed_entries_are_counted_and_skipped(redis_url: str) -> None:
    transport = _transport(redis_url)
    async with Channel[int]("junk", transport=transport) as channel:
        broadcast = await channel.subscribe("t")
        group = await channel.subscribe("t", group="g")
        raw = aioredis.Redis.from_url(redis_url)
        try:
            key = transport.stream_key(channel, "t")
            await raw.xadd(key, {"f": b"garbage"})
            await raw.xadd(key, {"other": b"field"})
        finally:
            await raw.aclose()
        await channel.publish(5, topic="t")
        assert (await broadcast.receive(timeout=5)).data == 5
        assert (await group.receive(timeout=5)).data == 5
        assert transport.stats().malformed == 4  # two entries, two readers
        assert transport.stats().dead_lettered == 2  # the group's copies: nobody can handle them


async def test_streams_options_are_checked(redis_url: str) -> None:
    for kwargs, argument in (
        ({"maxlen": 0}, "maxlen"),
        ({"claim_idle": float("inf")}, "claim_idle"),
        ({"max_deliveries": True}, "max_deliveries"),
        ({"block": -1}, "block"),
    ):
        with pytest.raises(ConfigurationError, match=argument):
            RedisStreamsTransport(redis_url, **kwargs)
    async with Channel[int]("opts", transport=_transport(redis_url)) as channel:
        with pytest.raises(ConfigurationError, match="topics"):
            await channel.subscribe("t.*")
        with pytest.raises(ConfigurationError, match="topics"):
            await channel.subscribe()
        with pytest.raises(ConfigurationError, match="start"):
            await channel.subscribe("t", start="yesterday")
        with pytest.raises(ConfigurationError, match="consumer"):
            await channel.subscribe("t", consumer="c")
        with pytest.raises(ConfigurationError, match="topic"):
            await channel.publish(1)
        assert channel.subscriber_count == 0


async def test_readers_retry_after_redis_restarts_and_recreate_a_lost_group(
    redis_server: RedisServer, eventually: Eventually
) -> None:
    if not redis_server.running:
        redis_server.start()
    transport = _transport(redis_server.url, max_backoff=0.1)
    async with Channel[str]("restart", transport=transport) as channel:
        group = await channel.subscribe("t", group="g")
        broadcast = await channel.subscribe("t")
        await channel.publish("before", topic="t")
        assert (await group.receive(timeout=5)).data == "before"
        assert (await broadcast.receive(timeout=5)).data == "before"
        redis_server.kill()  # no persistence: the stream and its group are gone
        await eventually(lambda: not transport.stats().connected)
        with pytest.raises(ChannelConnectionError):
            await channel.publish("lost", topic="t")
        redis_server.start()
        await eventually(lambda: transport.stats().connected)
        await channel.publish("after", topic="t")
        assert (await group.receive(timeout=5)).data == "after"  # the group was made again
        assert (await broadcast.receive(timeout=5)).data == "after"  # from its last id on
        assert transport.stats().reconnects >= 1
