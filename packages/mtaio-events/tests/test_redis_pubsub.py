"""The Pub/Sub transport: glob semantics kept, one connection, reconnect and gaps reported."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from mtaio.events import (
    Channel,
    ChannelConnectionError,
    JsonSerializer,
    RedisPubSubTransport,
    Subscriber,
    _redis_pubsub,
)
from mtaio.events._redis_pubsub import redis_glob
from mtaio.events._transport import decode_frame, encode_frame, frame_head
from mtaio.exceptions import ConfigurationError, DependencyError
from mtaio.testing import RedisServer, find_redis_server, free_port, require_redis_server

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
        # the first one went out on the publishing connection itself (no sender task):
        # closing that connection fails it now, not at the 5 s socket timeout
        gathered = asyncio.gather(*pending, return_exceptions=True)
        results = await asyncio.wait_for(gathered, timeout=2)
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


@pytest.mark.parametrize("topic", ["t", None, 'q"uote', "caf\u00e9.\u2603"])
def test_a_frame_from_its_formatted_header_is_the_frame_encode_frame_builds(
    topic: str | None,
) -> None:
    publisher = "123-abc-def"
    fast = frame_head(topic, publisher) + b"%d}\n%s" % (42, b'"x"')
    assert fast == encode_frame(topic, None, publisher, 42, b'"x"')
    frame = decode_frame(fast)
    decoded = (frame.topic, frame.publisher, frame.seq, frame.payload)
    assert decoded == (topic, publisher, 42, b'"x"')


async def test_metadata_and_plain_publishes_interleave_in_order(redis_url: str) -> None:
    async with (
        Channel[int]("meta", transport=RedisPubSubTransport(redis_url)) as receiver,
        Channel[int]("meta", transport=RedisPubSubTransport(redis_url)) as sender,
    ):
        sub = await receiver.subscribe("t")
        await sender.publish(1, topic="t")
        await sender.publish(2, topic="t", metadata={"k": "v"})
        await sender.publish(3, topic="t", metadata={})
        got = [await sub.receive(timeout=5) for _ in range(3)]
        assert [(m.data, m.metadata) for m in got] == [(1, {}), (2, {"k": "v"}), (3, {})]
        assert receiver.stats().missed == 0


async def test_a_publish_to_a_server_that_stopped_answering_fails_at_the_socket_timeout(
    redis_server: RedisServer,
) -> None:
    # The publishing connection drops redis-py's per-write timer for one of its own per
    # round trip: the client's socket_timeout still bounds a publish.
    if not redis_server.running:
        redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url, protocol=2, socket_timeout=0.3)
    try:
        async with Channel[int]("stalled", transport=RedisPubSubTransport(client)) as channel:
            await channel.publish(0, topic="t")  # connected
            redis_server.pause()
            try:
                started = time.monotonic()
                with pytest.raises(ChannelConnectionError):
                    await asyncio.wait_for(channel.publish(1, topic="t"), timeout=5)
                assert time.monotonic() - started < 3
            finally:
                redis_server.resume()
            assert await channel.publish(2, topic="t") == 0  # a new connection, no reader
        assert await client.ping()  # the caller's client is still the caller's
    finally:
        await client.aclose()


def _start_cluster_node(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start a cluster-enabled redis-server, give it every slot, wait for ``cluster_state:ok``."""
    directory.mkdir()
    port = free_port("127.0.0.1")
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cluster = ["--cluster-enabled", "yes", "--dir", str(directory)]
    proc = subprocess.Popen([binary, *options, *cluster], stdout=subprocess.DEVNULL)
    node = redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                info = node.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                if b"cluster_state:ok" in info:
                    return proc, port
                if b"cluster_slots_assigned:0" in info:
                    node.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")  # type: ignore[no-untyped-call]
            except redis.RedisError:
                pass  # not listening yet
            time.sleep(0.05)
    finally:
        node.close()
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the cluster node on port {port} did not come up")


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[int]:
    """A one-node Redis Cluster (every slot on it) on a free loopback port."""
    require_redis_server()
    binary = find_redis_server()
    assert binary is not None
    for attempt in range(3):  # a free port can be taken before the server binds it
        try:
            proc, port = _start_cluster_node(binary, tmp_path / str(attempt))
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield port
    finally:
        proc.kill()
        proc.wait()


async def test_a_cluster_client_publishes_through_its_own_routing_in_order(
    cluster_node: int,
) -> None:
    # RedisCluster has no connection pool to take a publishing connection from: publishes
    # go through the client's commands, still one batch at a time.
    client = aioredis.RedisCluster(host="127.0.0.1", port=cluster_node)
    try:
        async with (
            Channel[int]("clustered", transport=RedisPubSubTransport(client)) as receiver,
            Channel[int]("clustered", transport=RedisPubSubTransport(client)) as sender,
        ):
            sub = await receiver.subscribe("n", maxsize=500)
            assert await sender.publish(-1, topic="n") == 1
            counts = await asyncio.gather(*(sender.publish(i, topic="n") for i in range(200)))
            assert counts == [1] * 200
            got = [(await sub.receive(timeout=5)).data for _ in range(201)]
            assert got == list(range(-1, 200))
            assert receiver.stats().missed == 0
    finally:
        await client.aclose()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_callers_client_of_either_protocol_receives_messages_and_patterns(
    redis_url: str, protocol: int
) -> None:
    # RESP3 delivers Pub/Sub messages as push replies (hiredis' PushNotification, a list
    # subclass); the reader must take them as messages like RESP2's plain lists.
    client = aioredis.Redis.from_url(redis_url, protocol=protocol)
    try:
        async with Channel[int]("resp", transport=RedisPubSubTransport(client)) as channel:
            exact = await channel.subscribe("a.b")
            pattern = await channel.subscribe("a.*")
            await channel.publish(5, topic="a.b")
            assert (await exact.receive(timeout=5)).data == 5
            assert (await pattern.receive(timeout=5)).data == 5
    finally:
        await client.aclose()


async def test_subscribing_after_a_reconnect_with_nothing_subscribed_is_confirmed(
    redis_server: RedisServer, eventually: Eventually
) -> None:
    if not redis_server.running:
        redis_server.start()
    transport = RedisPubSubTransport(redis_server.url, max_backoff=0.2, confirm_timeout=3)
    async with (
        Channel[int]("late", transport=transport) as receiver,
        Channel[int]("late", transport=RedisPubSubTransport(redis_server.url)) as sender,
    ):
        await (await receiver.subscribe("t")).close()  # the reader stays, nothing subscribed
        redis_server.kill()
        redis_server.start()
        # the reader reconnected, with nothing to subscribe on its new connection
        await eventually(
            lambda: transport._pubsub is not None and transport._pubsub.connection is None
        )
        # it used to wait for a subscription confirmed by nobody: ChannelConnectionError
        sub = await receiver.subscribe("t")
        await sender.publish(1, topic="t")
        assert (await sub.receive(timeout=5)).data == 1


async def test_beyond_the_route_limit_numbering_restarts_under_a_new_publisher_id(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A publisher forgets its sequence numbers when it has numbered too many topics; it
    # must then look like a new publisher, or readers would drop its restarted numbers
    # as repeats.
    monkeypatch.setattr(_redis_pubsub, "_ROUTE_LIMIT", 2)
    async with (
        Channel[int]("routes", transport=RedisPubSubTransport(redis_url)) as receiver,
        Channel[int]("routes", transport=RedisPubSubTransport(redis_url)) as sender,
    ):
        sub = await receiver.subscribe("*")
        topics = ["a", "b", "c", "a", "b", "a"]
        for i, topic in enumerate(topics):
            await sender.publish(i, topic=topic)
        got = [await sub.receive(timeout=5) for _ in topics]
        assert [(m.topic, m.data) for m in got] == list(zip(topics, range(6), strict=True))
        assert receiver.stats().missed == 0


async def test_publishes_queued_on_a_lost_connection_fail_and_publishing_resumes(
    redis_server: RedisServer,
) -> None:
    if not redis_server.running:
        redis_server.start()
    async with Channel[int]("lost", transport=RedisPubSubTransport(redis_server.url)) as channel:
        await channel.publish(0, topic="t")  # connected
        redis_server.kill()
        try:
            publishes = (channel.publish(i, topic="t") for i in range(5))
            gathered = asyncio.gather(*publishes, return_exceptions=True)
            results = await asyncio.wait_for(gathered, timeout=10)
        finally:
            redis_server.start()
        assert all(isinstance(r, ChannelConnectionError) for r in results), results
        assert await channel.publish(6, topic="t") == 0  # a new publishing connection
        assert channel.stats().published == 2


async def test_a_publish_cancelled_mid_flight_leaves_the_transport_usable(
    redis_server: RedisServer,
) -> None:
    # The cancelled publish's reply would otherwise be read as the next one's: the
    # publishing connection is dropped and the next publish opens another.
    if not redis_server.running:
        redis_server.start()
    async with (
        Channel[int]("cancel", transport=RedisPubSubTransport(redis_server.url)) as receiver,
        Channel[int]("cancel", transport=RedisPubSubTransport(redis_server.url)) as sender,
    ):
        sub = await receiver.subscribe("t")
        await sender.publish(0, topic="t")
        redis_server.pause()
        try:
            stuck = asyncio.ensure_future(sender.publish(1, topic="t"))
            queued = asyncio.ensure_future(sender.publish(2, topic="t"))
            await asyncio.sleep(0.05)  # both handed over: one on the wire, one queued
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
        finally:
            redis_server.resume()
        assert await asyncio.wait_for(queued, timeout=5) == 1
        assert await sender.publish(3, topic="t") == 1
        got: list[int] = []
        while not got or got[-1] != 3:
            got.append((await sub.receive(timeout=5)).data)
        # 1 may or may not have reached Redis before the cancellation; the rest in order
        assert got in ([0, 1, 2, 3], [0, 2, 3])
