r""":class:`RedisPubSubTransport`: at-most-once fan-out over Redis Pub/Sub.

One subscription connection per transport (share one transport between the channels of a
process) carries every subscription; a reader task reads it and hands each message to its
channel, which routes it with its own glob semantics.

Patterns. A channel pattern becomes a Redis glob that matches a superset of it: ``**`` and
``*`` both become ``*`` (Redis' ``*`` crosses dots), ``?`` stays ``?`` (Redis' matches a dot
too), and ``[``, ``]``, ``\\`` are escaped. When the pattern uses only ``**`` the two agree
exactly; otherwise the channel's own matcher filters locally what Redis sent too much of. An
exact topic is a plain SUBSCRIBE.

Gaps. Each publisher numbers its messages per Redis channel. The reader remembers the last
number seen per publisher and channel: a jump is a gap (messages lost, typically while the
connection was down), counted and announced to subscribers; a repeat is the same message
reaching this connection through a second matching pattern, delivered once.

Hot paths. Publishes go out on one connection the transport holds (made from the client's
pool settings; a cluster client is used command by command), written and read directly, one
batch on the wire at a time: a publish on an idle transport costs no task and no future.
The reader reads the subscription connection in a tight loop and hands each message straight
to its channel; only the other replies go through redis-py's ``PubSub`` bookkeeping.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import math
import random
from typing import TYPE_CHECKING, Any, final

from mtaio.exceptions import ConfigurationError, require_positive

from ._transport import (
    ChannelConnectionError,
    SubscribeOptions,
    Transport,
    TransportStats,
    check_prefix,
    connection_error,
    decode_frame,
    encode_frame,
    frame_head,
    new_publisher_id,
    redis_call,
    redis_client,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.asyncio.connection import AbstractConnection

    from ._channel import Channel, Subscriber

__all__ = ("RedisPubSubTransport", "redis_glob")

logger = logging.getLogger("mtaio.events")

_SEEN_LIMIT = 100_000  # (publisher, channel) pairs remembered; beyond it the memory starts over
_ROUTE_LIMIT = 100_000  # (channel, topic) pairs a publisher numbers; beyond it, a new publisher id
_MESSAGE = (b"message", "message")
_PMESSAGE = (b"pmessage", "pmessage")


@final
class _Route:
    """Where a publisher sends one topic of one channel, and its sequence number there."""

    __slots__ = ("head", "redis_channel", "seq")

    def __init__(self, redis_channel: str, head: bytes) -> None:
        self.redis_channel = redis_channel
        self.head = head  # the frame up to the sequence number (no metadata)
        self.seq = 0


def redis_glob(pattern: str) -> tuple[str, bool]:
    """Translate a channel glob into a Redis glob matching a superset of it.

    Returns:
        The Redis glob, and whether it matches exactly the same names (``False``: the
        channel filters locally what Redis sends in excess).

    Example:
        >>> redis_glob("user.**")
        ('user.*', True)
        >>> redis_glob("user.*")
        ('user.*', False)
    """
    out: list[str] = []
    exact = True
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append("*")
            i += 2
            continue
        if ch == "*":
            out.append("*")
            exact = False
        elif ch == "?":
            out.append("?")
            exact = False
        elif ch in "[]\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
        i += 1
    if pattern in ("*", "**"):
        exact = True  # both match every topic
    return "".join(out), exact


def _is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


@final
class RedisPubSubTransport(Transport):
    """Redis Pub/Sub under a :class:`~mtaio.events.Channel`: every subscriber in every process.

    At-most-once: a message reaches the subscribers connected when it is published. After
    a lost connection the transport reconnects with back-off, subscribes again, and counts
    the messages it can tell it missed (``stats().missed``, ``Subscriber.stats().missed``,
    the ``on_gap`` callback of :meth:`~mtaio.events.Channel.subscribe`).

    Example::

        transport = RedisPubSubTransport("redis://localhost:6379/0")
        async with Channel[dict]("orders", transport=transport) as channel:
            sub = await channel.subscribe("order.*")
            await channel.publish({"id": 1}, topic="order.created")  # every process

    Args:
        redis: A ``redis://``/``rediss://``/``unix://`` URL, or a ``redis.asyncio`` client
            (the caller keeps owning it).
        prefix: Prepended to every Redis channel name (``"{prefix}:{channel}:t:{topic}"``).
        max_backoff: The longest wait between reconnection attempts, in seconds.
        confirm_timeout: How long :meth:`~mtaio.events.Channel.subscribe` waits for the
            server to confirm a new subscription before raising
            :class:`~mtaio.events.ChannelConnectionError`.

    Raises:
        DependencyError: If redis-py is missing (``pip install 'mtaio-events[redis]'``).
    """

    __slots__ = (
        "_backoff",
        "_channels",
        "_client",
        "_confirm_timeout",
        "_conn",
        "_conn_timeout",
        "_connected",
        "_keys",
        "_malformed",
        "_max_backoff",
        "_missed",
        "_outbox",
        "_owned",
        "_publisher",
        "_pubsub",
        "_reader",
        "_reconnects",
        "_routes",
        "_seen",
        "_sender",
        "_sending",
        "_target",
        "_waiters",
        "prefix",
    )

    def __init__(
        self,
        redis: object,
        *,
        prefix: str = "mtaio",
        max_backoff: float = 2.0,
        confirm_timeout: float = 10.0,
    ) -> None:
        self.prefix = check_prefix(prefix)
        self._max_backoff = require_positive("max_backoff", max_backoff)
        self._confirm_timeout = require_positive("confirm_timeout", confirm_timeout)
        self._target = redis
        self._owned = isinstance(redis, str)
        self._client: Redis | None = self._connect()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, Channel[Any]] = {}  # "{prefix}:{name}" -> channel
        # Redis channel or pattern -> (is pattern, subscribers using it)
        self._keys: dict[str, tuple[bool, set[Subscriber[Any]]]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._routes: dict[tuple[str, str | None], _Route] = {}  # (channel name, topic)
        # The publishing connection: redis-py's, held by this transport (None: not open yet,
        # or a client without a connection pool, e.g. RedisCluster, used command by command).
        self._conn: AbstractConnection | None = None
        self._conn_timeout: float | None = None
        # (Redis channel, encoded frame, the publisher's future), sent in this order
        self._outbox: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._sending = False  # a publish on the wire outside the sender
        self._seen: dict[tuple[str, str], int] = {}
        self._publisher = new_publisher_id()
        self._connected = False
        self._backoff = 0.0
        self._reconnects = 0
        self._missed = 0
        self._malformed = 0

    def _connect(self) -> Redis:
        return redis_client(self._target)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        state = "connected" if self._connected else "idle"
        channels = len(self._channels)
        return f"<RedisPubSubTransport prefix={self.prefix!r} channels={channels} {state}>"

    # ------------------------------------------------------------------ names

    def _base(self, channel: Channel[Any]) -> str:
        return f"{self.prefix}:{channel.name}"

    def _keys_for(self, channel: Channel[Any], topics: tuple[str, ...] | None) -> list[str]:
        base = self._base(channel)
        if topics is None:
            return [f"{base}:*"]  # every topic, and messages without one
        keys = []
        for topic in topics:
            if _is_glob(topic):
                keys.append(f"{redis_glob(base)[0]}:t:{redis_glob(topic)[0]}")
            else:
                keys.append(f"{base}:t:{topic}")
        return keys

    @staticmethod
    def _redis_channel(base: str, topic: str | None) -> str:
        return f"{base}:n" if topic is None else f"{base}:t:{topic}"

    # ------------------------------------------------------------------ Transport

    async def attach(self, channel: Channel[Any]) -> None:
        base = self._base(channel)
        if base in self._channels:
            raise ConfigurationError(
                f"a channel named {channel.name!r} is already attached to this transport"
            )
        self._channels[base] = channel
        if self._client is None:
            self._client = self._connect()

    async def detach(self, channel: Channel[Any]) -> None:
        self._channels.pop(self._base(channel), None)
        if self._channels:
            return
        await self._stop()

    async def _stop(self) -> None:
        sender = self._sender
        if sender is not None:  # let what was published go out before the client closes
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(sender), timeout=5.0)
            if not sender.done():  # a server that stopped answering: give up on the rest
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        outbox, self._outbox = self._outbox, []
        for _, _, done in outbox:
            if not done.done():
                done.set_exception(ChannelConnectionError("the transport was closed"))
        conn, self._conn = self._conn, None
        if conn is not None:  # a publish still on it (sent outside the sender) fails now
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._drop_pubsub()
        self._connected = False
        self._keys.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()
        self._waiters.clear()
        client, self._client = self._client, None
        if client is not None and self._owned:
            await client.aclose()

    async def close(self) -> None:
        """Release the connection and the reader now (channels still attached stop receiving)."""
        self._channels.clear()
        await self._stop()

    async def publish(
        self,
        channel: Channel[Any],
        topic: str | None,
        metadata: dict[str, Any] | None,
        payload: bytes,
    ) -> int:
        route = self._routes.get((channel.name, topic))
        if route is None:
            route = self._new_route(channel, topic)
        route.seq = seq = route.seq + 1  # consumed even if sending fails: a gap to readers
        if metadata:
            data = encode_frame(topic, metadata, self._publisher, seq, payload)
        else:  # the frame encode_frame would build, from the header formatted once
            data = b"%s%d}\n%s" % (route.head, seq, payload)
        # Every publish goes through one sender with one batch on the wire at a time: Redis
        # then receives a publisher's messages in sequence order (concurrent publishes on
        # pooled connections could overtake each other, and readers would count the late
        # one as lost), and concurrent publishes share round trips instead of connections.
        if self._sender is None and not self._sending and self._client is not None:
            # Nothing on the wire: send it here, no task, no future. Publishes meanwhile
            # queue up and go out after this one, in order.
            self._sending = True
            try:
                return (await self._write([(route.redis_channel, data)]))[0]
            finally:
                self._sending = False
                if self._outbox:
                    self._sender = asyncio.get_running_loop().create_task(self._send())
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        self._outbox.append((route.redis_channel, data, done))
        if self._sender is None and not self._sending:
            self._sender = loop.create_task(self._send())
        return await done

    def _new_route(self, channel: Channel[Any], topic: str | None) -> _Route:
        if len(self._routes) >= _ROUTE_LIMIT:
            # Forget every sequence number at once, under a new publisher id: readers see
            # a new publisher, not numbers going back (duplicates) or jumping (gaps).
            self._routes.clear()
            self._publisher = new_publisher_id()
        redis_channel = self._redis_channel(self._base(channel), topic)
        route = _Route(redis_channel, frame_head(topic, self._publisher))
        self._routes[(channel.name, topic)] = route
        return route

    async def _send(self) -> None:
        batch: list[tuple[str, bytes, asyncio.Future[int]]] = []
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    counts = await self._write([(channel, data) for channel, data, _ in batch])
                except Exception as exc:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (_, _, done), count in zip(batch, counts, strict=True):
                    if not done.done():
                        done.set_result(count)
        finally:
            self._sender = None
            for _, _, done in batch:  # cancelled mid-batch (close): nobody waits forever
                if not done.done():
                    done.set_exception(ChannelConnectionError("the transport was closed"))

    async def _write(self, commands: list[tuple[str, bytes]]) -> list[int]:
        """PUBLISH each (channel, frame) in one round trip, in order; the receiver counts."""
        client = self._client
        if client is None:
            raise ChannelConnectionError("the transport is closed")
        conn = self._conn
        if conn is None:
            make = getattr(getattr(client, "connection_pool", None), "make_connection", None)
            if make is None:  # a cluster client: it routes each command itself
                return await self._write_through(client, commands)
            # One connection of the client's pool settings, held: no pool, retry or
            # instrumentation layer per publish. Its socket timeout becomes one timer per
            # round trip (redis-py would start a task per write to time it).
            conn = self._conn = make()
            self._conn_timeout = conn.socket_timeout
            conn.socket_timeout = None
        held: AbstractConnection = conn
        try:
            async with asyncio.timeout(self._conn_timeout):
                if len(commands) == 1:
                    packed = conn.pack_command("PUBLISH", *commands[0])
                else:
                    packed = conn.pack_commands([("PUBLISH", *c) for c in commands])
                await conn.send_packed_command(packed, check_health=False)
                return [int(await conn.read_response()) for _ in commands]
        except BaseException as exc:
            # Replies still due would be read as the answers to the next commands.
            if self._conn is held:
                self._conn = None
            with contextlib.suppress(Exception):
                await held.disconnect(nowait=True)
            if isinstance(exc, Exception):
                error = connection_error(exc, "PUBLISH")
                if error is not exc:
                    raise error from exc
            raise

    @staticmethod
    async def _write_through(client: Any, commands: list[tuple[str, bytes]]) -> list[int]:
        # One after the other, all to one node: a cluster refuses PUBLISH in a pipeline and
        # would send each to a random node, from which the cluster bus forwards it, so two
        # messages sent through two nodes could reach a subscriber in either order.
        node = client.get_default_node()
        return [
            int(await redis_call(client.publish(channel, data, target_nodes=node), "PUBLISH"))
            for channel, data in commands
        ]

    async def subscribe(
        self, channel: Channel[Any], subscriber: Subscriber[Any], options: SubscribeOptions
    ) -> None:
        loop = asyncio.get_running_loop()
        new: list[str] = []
        waiters: list[asyncio.Future[None]] = []
        for key in self._keys_for(channel, subscriber.topics):
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = (_is_glob(key), set())
                new.append(key)
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.setdefault(key, []).append(waiter)
                waiters.append(waiter)
            entry[1].add(subscriber)
        if not new:
            return
        if self._reader is None:
            self._reader = loop.create_task(self._read(), name=f"{self!r} reader")
        elif self._connected and self._pubsub is not None:
            with contextlib.suppress(Exception):  # a failure here: the reader reconnects
                await self._send_subscribe(self._pubsub, new)
        # Return once Redis confirmed: anything published from now on reaches us.
        try:
            async with asyncio.timeout(self._confirm_timeout):
                await asyncio.gather(*waiters)
        except builtins.TimeoutError:
            for waiter in waiters:
                waiter.cancel()
            raise ChannelConnectionError(
                f"the server did not confirm the subscription within {self._confirm_timeout} s"
            ) from None

    async def unsubscribe(self, channel: Channel[Any], subscriber: Subscriber[Any]) -> None:
        gone: list[str] = []
        for key in self._keys_for(channel, subscriber.topics):
            entry = self._keys.get(key)
            if entry is None:
                continue
            entry[1].discard(subscriber)
            if not entry[1]:
                del self._keys[key]
                gone.append(key)
        if not gone:
            return
        # Sequences of channels no longer heard would make false gaps on a later subscribe.
        self._seen.clear()
        pubsub = self._pubsub
        if pubsub is not None and self._connected:
            with contextlib.suppress(Exception):
                patterns = [k for k in gone if _is_glob(k)]
                plain = [k for k in gone if not _is_glob(k)]
                if patterns:
                    await pubsub.punsubscribe(*patterns)
                if plain:
                    await pubsub.unsubscribe(*plain)

    def stats(self) -> TransportStats:
        return TransportStats(
            kind="pubsub",
            connected=self._connected,
            reconnects=self._reconnects,
            missed=self._missed,
            malformed=self._malformed,
            redelivered=0,
            dead_lettered=0,
            subscriptions=len(self._keys),
        )

    # ------------------------------------------------------------------ reader

    @staticmethod
    async def _send_subscribe(pubsub: PubSub, keys: list[str]) -> None:
        patterns = [k for k in keys if _is_glob(k)]
        plain = [k for k in keys if not _is_glob(k)]
        if patterns:
            await pubsub.psubscribe(*patterns)
        if plain:
            await pubsub.subscribe(*plain)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self) -> None:
        first = True
        while True:
            try:
                if self._pubsub is None:
                    if not first:
                        await self._sleep_backoff()
                    first = False
                    if self._client is None:
                        return
                    # A RedisCluster's PubSub needs its slot map, which only a command
                    # or initialize() loads (idempotent; a Redis client returns at once).
                    await self._client.initialize()
                    pubsub = self._client.pubsub()
                    self._pubsub = pubsub
                    if self._keys:
                        await self._send_subscribe(pubsub, list(self._keys))
                await self._pump(self._pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._connected:
                    logger.warning("%r lost its connection (%s); reconnecting", self, exc)
                self._connected = False
                await self._drop_pubsub()

    async def _sleep_backoff(self) -> None:
        self._backoff = min(self._max_backoff, max(0.05, self._backoff * 2))
        await asyncio.sleep(self._backoff * (0.5 + random.random() / 2))

    async def _pump(self, pubsub: PubSub) -> None:
        # A tight loop on the subscription connection: hiredis parses each reply and a
        # message goes straight to its channel. Only the other replies (subscription
        # confirmations, pongs) go through redis-py's PubSub bookkeeping.
        on_message = self._on_message
        while True:
            conn: Any = pubsub.connection  # (typed as always set)
            if conn is None:  # nothing sent on this connection yet
                if self._keys:
                    await self._send_subscribe(pubsub, list(self._keys))
                else:
                    await asyncio.sleep(0.05)
                continue
            # math.inf: block without the connection's socket timeout (as listen() does)
            reply = await conn.read_response(timeout=math.inf, push_request=True)
            # a list; a RESP3 push reply is hiredis' PushNotification, a list subclass
            kind = reply[0] if isinstance(reply, list) and len(reply) >= 3 else None
            if kind in _MESSAGE:
                await on_message(reply[1], reply[2])
            elif kind in _PMESSAGE and len(reply) >= 4:
                await on_message(reply[2], reply[3])
            else:
                message = await pubsub.handle_message(reply)  # type: ignore[no-untyped-call]
                if message is not None and message["type"] in ("subscribe", "psubscribe"):
                    self._confirmed(message["channel"])

    def _confirmed(self, key: object) -> None:
        if not self._connected:
            if self._backoff:  # not the first connection
                self._reconnects += 1
                logger.info("%r reconnected", self)
            self._connected = True
        self._backoff = 0.0
        name = key.decode() if isinstance(key, bytes) else str(key)
        for waiter in self._waiters.pop(name, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _on_message(self, raw_channel: object, raw: object) -> None:
        try:
            redis_channel = (
                raw_channel.decode() if isinstance(raw_channel, bytes) else str(raw_channel)
            )
            frame = decode_frame(raw)
            topic = frame.topic
            suffix = ":n" if topic is None else f":t:{topic}"
            if not redis_channel.endswith(suffix):
                raise ValueError("the topic does not match the channel")
            channel = self._channels.get(redis_channel[: -len(suffix)])
        except Exception:
            self._malformed += 1
            return
        if channel is None:
            return  # a channel detached meanwhile
        key = (frame.publisher, redis_channel)
        last = self._seen.get(key)
        if last is not None:
            if frame.seq <= last:
                return  # the same message through a second matching pattern
            if frame.seq > last + 1:
                missed = frame.seq - last - 1
                self._missed += missed
                channel._gap(topic, missed)
        elif len(self._seen) >= _SEEN_LIMIT:
            self._seen.clear()
        self._seen[key] = frame.seq
        message = channel._decode(frame)
        if message is None:
            self._malformed += 1
            return
        await channel._deliver(message)
