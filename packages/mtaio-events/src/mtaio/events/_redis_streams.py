""":class:`RedisStreamsTransport`: durable, at-least-once delivery over Redis Streams.

Each topic of a channel is one stream, ``{prefix:channel}:s:<topic>``, trimmed by
``XADD ... MAXLEN ~ maxlen``: past that length the oldest entries are deleted (a subscriber
that falls further behind than ``maxlen`` loses them). All keys of one channel share the hash
tag ``{prefix:channel}``, so one XREAD can cover several topics on Redis Cluster.

Every subscriber has its own reader task (and, while it blocks in ``XREAD``/``XREADGROUP``,
one pooled connection):

* broadcast: ``XREAD`` from where it starts (``$`` resolved to the last id at subscribe time,
  ``0``, or a saved id), in stream order, so order per topic holds;
* group: ``XREADGROUP ... >`` in a consumer group. It never asks for more entries than its
  queue has room for (``COUNT``), so unacknowledged work does not pile up in one process.
  Acknowledgements (``XACK``) go out in batches before each read. Entries another consumer
  left pending longer than ``claim_idle`` are taken over with ``XAUTOCLAIM`` (counted as
  redelivered); an entry delivered more than ``max_deliveries`` times goes to the channel's
  dead-letter stream ``{prefix:channel}:dead`` instead and is acknowledged.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import random
import re
import socket
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any, final

from mtaio.exceptions import ConfigurationError, require_positive, require_positive_int
from mtaio.typing import redis_key

from ._transport import (
    Frame,
    SubscribeOptions,
    Transport,
    TransportStats,
    check_prefix,
    decode_frame,
    encode_frame,
    redis_call,
    redis_client,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ._channel import Channel, Message, Subscriber

__all__ = ("RedisStreamsTransport",)

logger = logging.getLogger("mtaio.events")

_STREAM_ID = re.compile(r"\d+(-\d+)?")
_FIELD = b"f"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@final
class RedisStreamsTransport(Transport):
    """Redis Streams under a :class:`~mtaio.events.Channel`: durable, consumer groups.

    Example::

        transport = RedisStreamsTransport("redis://localhost:6379/0", maxlen=100_000)
        async with Channel[dict]("jobs", transport=transport) as jobs:
            worker = await jobs.subscribe("resize", group="workers")
            async for message in worker:     # acknowledged when the body returns
                await resize(message.data)

    Args:
        redis: A ``redis://``/``rediss://``/``unix://`` URL, or a ``redis.asyncio`` client
            (the caller keeps owning it).
        prefix: The first part of every key's hash tag (``{prefix:channel}``).
        maxlen: Each topic's stream is trimmed to about this many entries (``MAXLEN ~``);
            older entries are deleted.
        claim_idle: Seconds an entry may stay unacknowledged by its consumer before another
            consumer of the group takes it over (``XAUTOCLAIM``).
        max_deliveries: Deliveries after which an entry goes to the dead-letter stream.
        block: Seconds one ``XREAD``/``XREADGROUP`` waits for new entries before the reader
            looks at its other duties (claims, acknowledgements).
        max_backoff: The longest wait between attempts after a lost connection.

    Raises:
        DependencyError: If redis-py is missing (``pip install 'mtaio-events[redis]'``).
    """

    __slots__ = (
        "_attached",
        "_block",
        "_claim_idle",
        "_client",
        "_connected",
        "_dead_lettered",
        "_malformed",
        "_max_backoff",
        "_max_deliveries",
        "_maxlen",
        "_owned",
        "_readers",
        "_reconnects",
        "_redelivered",
        "_target",
        "prefix",
    )

    supports_groups = True
    supports_patterns = False

    def __init__(
        self,
        redis: object,
        *,
        prefix: str = "mtaio",
        maxlen: int = 100_000,
        claim_idle: float = 30.0,
        max_deliveries: int = 5,
        block: float = 1.0,
        max_backoff: float = 2.0,
    ) -> None:
        self.prefix = check_prefix(prefix)
        self._maxlen = require_positive_int("maxlen", maxlen)
        self._claim_idle = require_positive("claim_idle", claim_idle)
        self._max_deliveries = require_positive_int("max_deliveries", max_deliveries)
        self._block = require_positive("block", block)
        self._max_backoff = require_positive("max_backoff", max_backoff)
        for argument, value in (("claim_idle", claim_idle), ("block", block)):
            if value == float("inf") or value > 86_400:
                raise ConfigurationError(f"{argument} must be at most one day, got {value!r}")
        self._target = redis
        self._owned = isinstance(redis, str)
        self._client: Redis | None = self._connect()
        self._readers: dict[Subscriber[Any], _Reader] = {}
        self._attached: set[str] = set()
        self._connected = False
        self._reconnects = 0
        self._malformed = 0
        self._redelivered = 0
        self._dead_lettered = 0

    def _connect(self) -> Redis:
        return redis_client(self._target)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<RedisStreamsTransport prefix={self.prefix!r} readers={len(self._readers)}>"

    # ------------------------------------------------------------------ keys

    def stream_key(self, channel: Channel[Any], topic: str | None) -> str:
        """The key of the stream holding ``topic`` of ``channel``."""
        return redis_key(self.prefix, channel.name, "n" if topic is None else f"s:{topic}")

    def dead_letter_key(self, channel: Channel[Any]) -> str:
        """The key of ``channel``'s dead-letter stream."""
        return redis_key(self.prefix, channel.name, "dead")

    # ------------------------------------------------------------------ Transport

    async def attach(self, channel: Channel[Any]) -> None:
        self._attached.add(channel.name)
        if self._client is None:
            self._client = self._connect()

    async def detach(self, channel: Channel[Any]) -> None:
        self._attached.discard(channel.name)
        for subscriber, reader in list(self._readers.items()):
            if reader.channel is channel:
                del self._readers[subscriber]
                await reader.aclose()
        if not self._attached:
            await self.close()

    async def close(self) -> None:
        """Stop every reader (acknowledging what is owed) and release the connections."""
        readers = list(self._readers.values())
        self._readers.clear()
        for reader in readers:
            await reader.aclose()
        self._attached.clear()
        client, self._client = self._client, None
        if client is not None and self._owned:
            await client.aclose()

    def _redis(self) -> Any:
        # Any: redis-py's stream command stubs type replies as unions of every protocol
        # version's shape; the reader checks what it reads instead.
        client = self._client
        assert client is not None, "the transport is not attached"
        return client

    async def publish(
        self,
        channel: Channel[Any],
        topic: str | None,
        metadata: dict[str, Any] | None,
        payload: bytes,
    ) -> int:
        if topic is None:
            raise ConfigurationError("topic is required on a Streams transport")
        key = self.stream_key(channel, topic)
        frame = encode_frame(topic, metadata, "", 0, payload)
        add = self._redis().xadd(key, {_FIELD: frame}, maxlen=self._maxlen, approximate=True)
        await redis_call(add, f"XADD to {key!r}")
        return 1

    async def subscribe(
        self, channel: Channel[Any], subscriber: Subscriber[Any], options: SubscribeOptions
    ) -> None:
        assert subscriber.topics is not None  # the channel refuses None and patterns here
        keys = {self.stream_key(channel, t): t for t in subscriber.topics}
        start = options.start
        if start not in ("$", "0") and not _STREAM_ID.fullmatch(start):
            raise ConfigurationError(f"start must be '$', '0' or a stream id, got {start!r}")
        reader = _Reader(self, channel, subscriber, options, keys)
        await redis_call(reader.prepare(), "subscribe")
        self._readers[subscriber] = reader
        subscriber._source = reader
        reader.start()

    async def unsubscribe(self, channel: Channel[Any], subscriber: Subscriber[Any]) -> None:
        reader = self._readers.pop(subscriber, None)
        if reader is not None:
            await reader.aclose()

    def stats(self) -> TransportStats:
        return TransportStats(
            kind="streams",
            connected=self._connected,
            reconnects=self._reconnects,
            missed=0,
            malformed=self._malformed,
            redelivered=self._redelivered,
            dead_lettered=self._dead_lettered,
            subscriptions=len(self._readers),
        )

    async def pending(self, channel: Channel[Any], topic: str, group: str) -> int:
        """How many entries of ``topic`` the consumer ``group`` has not acknowledged."""
        info = await self._redis().xpending(self.stream_key(channel, topic), group)
        return int(info["pending"])


class _Reader:
    """Reads one subscriber's streams into its queue (broadcast or group)."""

    __slots__ = (
        "_acks",
        "_backoff",
        "_cursors",
        "_held",
        "_ids",
        "_next_claim",
        "_stopping",
        "_task",
        "_wake",
        "channel",
        "consumer",
        "group",
        "keys",
        "options",
        "subscriber",
        "transport",
    )

    def __init__(
        self,
        transport: RedisStreamsTransport,
        channel: Channel[Any],
        subscriber: Subscriber[Any],
        options: SubscribeOptions,
        keys: dict[str, str],
    ) -> None:
        self.transport = transport
        self.channel = channel
        self.subscriber = subscriber
        self.options = options
        self.keys = keys
        self.group = options.group
        self.consumer = options.consumer or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self._ids: dict[str, str] = {}
        self._cursors: dict[str, str] = dict.fromkeys(keys, "0-0")
        self._acks: dict[str, list[str]] = defaultdict(list)
        self._held: Message[Any] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_claim = 0.0
        self._backoff = 0.0
        self._stopping = False

    # -- SubscriberSource

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None and self.options.auto_ack and getattr(held, "_ack", None):
            held._ack = None
            self._acks[self.transport.stream_key(self.channel, held.topic)].append(held._id)
            self._wake.set()

    def hold(self, message: Message[Any]) -> None:
        self._held = message
        self._wake.set()  # room in the queue

    async def aclose(self) -> None:
        # The reader stops between reads: a blocking XREAD returns within ``block`` seconds.
        # Cancelling redis-py in the middle of one can leave its pooled connection waiting,
        # so cancellation is only the fallback.
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self.transport._block + 2.0)
            except builtins.TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except asyncio.CancelledError:
                task.cancel()
                raise
        with contextlib.suppress(Exception):  # acknowledgements owed; lost ones redeliver
            await self._flush_acks()

    # -- setup

    async def prepare(self) -> None:
        client = self.transport._redis()
        start = self.options.start
        if self.group is None:
            for key in self.keys:
                if start == "$":
                    last = await client.xrevrange(key, "+", "-", count=1)
                    self._ids[key] = _text(last[0][0]) if last else "0-0"
                else:
                    self._ids[key] = "0-0" if start == "0" else start
        else:
            await self._create_groups()
        self.transport._connected = True

    async def _create_groups(self) -> None:
        client = self.transport._redis()
        for key in self.keys:
            try:
                await client.xgroup_create(key, self.group, id=self.options.start, mkstream=True)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def start(self) -> None:
        name = f"mtaio.events stream reader {self.channel.name}:{self.subscriber.topics}"
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    # -- the loop

    async def _run(self) -> None:
        transport = self.transport
        while not self._stopping:
            try:
                await self._step()
                if not transport._connected:
                    transport._connected = True
                    transport._reconnects += 1
                self._backoff = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if "NOGROUP" in str(exc) and self.group is not None:
                    # The server lost the group (restarted without persistence): make it again.
                    with contextlib.suppress(Exception):
                        await self._create_groups()
                    continue
                if transport._connected:
                    logger.warning("%r lost its connection (%s); retrying", transport, exc)
                transport._connected = False
                self._backoff = min(transport._max_backoff, max(0.05, self._backoff * 2))
                self._wake.clear()
                with contextlib.suppress(builtins.TimeoutError):  # woken early by close()
                    await asyncio.wait_for(
                        self._wake.wait(), self._backoff * (0.5 + random.random() / 2)
                    )

    async def _room(self) -> int:
        subscriber = self.subscriber
        while not self._stopping:
            room = subscriber._maxsize - len(subscriber._buffer)
            if room > 0:
                return room
            self._wake.clear()
            if self._acks:
                await self._flush_acks()
            await self._wake.wait()
        return 0

    async def _step(self) -> None:
        await self._flush_acks()
        room = await self._room()
        if not room:
            return
        client = self.transport._redis()
        block_ms = max(1, int(self.transport._block * 1000))
        if self.group is None:
            reply = await client.xread(self._ids, count=room, block=block_ms)
            for key, entries in reply or ():
                key = _text(key)
                for entry_id, fields in entries:
                    self._ids[key] = _text(entry_id)
                    await self._offer(key, _text(entry_id), fields, 1)
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_claim:
            await self._claim(room)
            self._next_claim = loop.time() + self.transport._claim_idle / 2
            room = await self._room()
            if not room:
                return
        wait = max(1, min(block_ms, int((self._next_claim - loop.time()) * 1000)))
        reply = await client.xreadgroup(
            self.group, self.consumer, dict.fromkeys(self.keys, ">"), count=room, block=wait
        )
        for key, entries in reply or ():
            key = _text(key)
            for entry_id, fields in entries:
                await self._offer(key, _text(entry_id), fields, 1)

    async def _claim(self, room: int) -> None:
        assert self.group is not None
        client = self.transport._redis()
        idle_ms = int(self.transport._claim_idle * 1000)
        for key in self.keys:
            cursor, entries, *_ = await client.xautoclaim(
                key, self.group, self.consumer, idle_ms, self._cursors[key], count=room
            )
            self._cursors[key] = _text(cursor)
            if not entries:
                continue
            first, last = _text(entries[0][0]), _text(entries[-1][0])
            pending = await client.xpending_range(
                key,
                self.group,
                min=first,
                max=last,
                count=len(entries) * 2 + 10,
                consumername=self.consumer,
            )
            deliveries = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
            for entry_id, fields in entries:
                entry_id = _text(entry_id)
                count = deliveries.get(entry_id, 2)
                if count > self.transport._max_deliveries:
                    await self._dead_letter(key, entry_id, fields, count)
                else:
                    self.transport._redelivered += 1
                    await self._offer(key, entry_id, fields, count)

    async def _dead_letter(self, key: str, entry_id: str, fields: Any, count: int) -> None:
        assert self.group is not None
        transport = self.transport
        frame = (fields or {}).get(_FIELD, b"")
        record = {
            "frame": frame,
            "stream": key,
            "id": entry_id,
            "group": self.group,
            "deliveries": str(count),
        }
        async with transport._redis().pipeline(transaction=True) as pipe:
            pipe.xadd(
                transport.dead_letter_key(self.channel),
                record,
                maxlen=transport._maxlen,
                approximate=True,
            )
            pipe.xack(key, self.group, entry_id)
            await pipe.execute()
        transport._dead_lettered += 1
        logger.warning(
            "entry %s of %s went to the dead-letter stream after %d deliveries",
            entry_id,
            key,
            count,
        )

    async def _offer(self, key: str, entry_id: str, fields: Any, deliveries: int) -> None:
        channel = self.channel
        message = None
        frame: Frame | None = None
        try:
            frame = decode_frame((fields or {}).get(_FIELD))
        except Exception:
            frame = None
        if frame is not None:
            message = channel._decode(frame)
        if message is None:
            self.transport._malformed += 1
            if self.group is not None:  # nobody could ever handle it
                await self._dead_letter(key, entry_id, fields, deliveries)
            return
        message._id = entry_id
        message._deliveries = deliveries
        message._ack = self._ack if self.group is not None else None
        subscriber = self.subscriber
        got = subscriber._offer(message)
        if got < 0:
            got = await subscriber._put(message)
        channel._delivered += max(0, got)

    async def _ack(self, message: Message[Any]) -> None:
        assert self.group is not None
        key = self.transport.stream_key(self.channel, message.topic)
        await self.transport._redis().xack(key, self.group, message._id)

    async def _flush_acks(self) -> None:
        if not self._acks or self.group is None:
            return
        acks, self._acks = self._acks, defaultdict(list)
        client = self.transport._redis()
        try:
            for key, ids in acks.items():
                await client.xack(key, self.group, *ids)
        except BaseException:
            for key, ids in acks.items():  # keep them for the next attempt
                self._acks[key].extend(ids)
            raise
