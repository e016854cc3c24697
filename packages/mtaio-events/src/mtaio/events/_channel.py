"""Pub/sub channels: topic patterns, bounded subscriber queues, slow-consumer policies.

Each subscriber owns a bounded deque. ``publish`` appends to every matching subscriber's
deque without awaiting, so a slow subscriber costs the publisher nothing unless it chose
the ``"block"`` policy; those are served last, after everyone else already has the message.
Routes (the subscribers matching a topic) are cached per topic and dropped on every
subscribe or unsubscribe, so publishing is one dict lookup plus the appends.

A channel given a transport (``_transport``) hands each publish to it instead, encoded by its
serializer, and fans out what the transport brings back through the same routes and queues;
the in-process path pays one attribute test for the option.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeAlias, TypeVar, final

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    EventError,
    TimeoutError,
    require_choice,
    require_positive,
    require_positive_int,
)

from ._event import check_event_name, check_name, compile_pattern, copy_metadata, is_pattern
from ._serializer import JsonSerializer, Serializer
from ._transport import Frame, GapCallback, SubscribeOptions, Transport, TransportStats

__all__ = (
    "Channel",
    "ChannelClosedError",
    "ChannelStats",
    "Message",
    "OverflowPolicy",
    "Subscriber",
    "SubscriberStats",
)

T = TypeVar("T")

OverflowPolicy: TypeAlias = Literal["block", "drop_oldest", "drop_newest", "disconnect"]
"""What ``publish`` does when a subscriber's queue is full; see :meth:`Channel.subscribe`."""
_POLICIES = ("block", "drop_oldest", "drop_newest", "disconnect")
_ROUTE_CACHE_LIMIT = 4096
_new_message = object.__new__
logger = logging.getLogger("mtaio.events")


class SubscriberSource(Protocol):
    """A transport's reader feeding one subscriber (Streams); see :class:`Subscriber`."""

    def release(self) -> None:
        """The subscriber asks for another message: the one it held is done with."""

    def hold(self, message: Message[Any]) -> None:
        """The subscriber took ``message`` out of its queue."""

    async def aclose(self) -> None:
        """Stop reading; flush what is owed (acknowledgements)."""


class ChannelClosedError(EventError):
    """The channel or the subscriber is closed (or the subscriber was disconnected).

    Raised by :meth:`Subscriber.receive` once the queue is drained, and by
    :meth:`Channel.publish` / :meth:`Channel.subscribe` on a closed channel.
    """


@final
class Message(Generic[T]):
    """A message received from a :class:`Channel`.

    Attributes:
        data: The payload.
        topic: The topic it was published under (``None`` when published without one).
        metadata: Extra information given to ``publish`` (an empty dict by default).
    """

    # _ack, _id and _deliveries are set only on messages read from a Streams transport.
    __slots__ = ("_ack", "_deliveries", "_id", "_metadata", "data", "topic")

    data: T
    topic: str | None
    _id: str
    _deliveries: int
    _ack: Callable[[Message[Any]], Awaitable[None]] | None

    def __init__(
        self, data: T, topic: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> None:
        if topic is not None:
            check_name("topic", topic)
        self.data = data
        self.topic = topic
        self._metadata = None if metadata is None else copy_metadata(metadata)

    @property
    def metadata(self) -> dict[str, Any]:
        """Extra information given to ``publish`` (an empty dict, made on first read)."""
        metadata = self._metadata
        if metadata is None:
            metadata = self._metadata = {}
        return metadata

    @property
    def id(self) -> str | None:
        """The Redis stream entry id (Streams transport), else ``None``."""
        try:
            return self._id
        except AttributeError:
            return None

    @property
    def deliveries(self) -> int:
        """How many times this message was delivered (above 1: a redelivery)."""
        try:
            return self._deliveries
        except AttributeError:
            return 1

    async def ack(self) -> None:
        """Acknowledge the message to its consumer group now (a no-op elsewhere).

        With ``auto_ack`` (the default) a group message is acknowledged when the subscriber
        is asked for the next one, i.e. once the code handling it returned; ``ack()`` does it
        earlier, and is the only acknowledgement with ``auto_ack=False``. Idempotent.
        """
        try:
            acker = self._ack
        except AttributeError:
            return
        if acker is not None:
            self._ack = None
            await acker(self)

    def __repr__(self) -> str:
        return f"Message({self.data!r}, topic={self.topic!r}, metadata={self.metadata!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.data, self.topic, self.metadata) == (other.data, other.topic, other.metadata)

    __hash__ = None  # type: ignore[assignment]


@final
@dataclass(frozen=True, slots=True)
class SubscriberStats:
    """Counters of a :class:`Subscriber`.

    Attributes:
        received: Messages taken out with ``receive``/iteration.
        queued: Messages waiting now.
        dropped: Messages lost to the overflow policy (``drop_oldest``/``drop_newest``).
        disconnected: Whether the ``disconnect`` policy removed this subscriber.
        missed: Messages of its topics that a transport lost (e.g. while reconnecting).
    """

    received: int
    queued: int
    dropped: int
    disconnected: bool
    missed: int = 0


@final
@dataclass(frozen=True, slots=True)
class ChannelStats:
    """Counters of a :class:`Channel`.

    Attributes:
        published: Calls to ``publish``.
        delivered: Messages queued to subscribers.
        dropped: Messages dropped by overflow policies, over all subscribers.
        disconnected: Subscribers removed by the ``disconnect`` policy.
        subscribers: Subscribers now.
        missed: Messages the transport lost (sequence gaps), over all topics.
        transport: The transport's counters, when the channel has one.
    """

    published: int
    delivered: int
    dropped: int
    disconnected: int
    subscribers: int
    missed: int = 0
    transport: TransportStats | None = None


@final
class Subscriber(Generic[T]):
    """One subscription to a :class:`Channel`; create it with :meth:`Channel.subscribe`.

    Receive with ``await receive()`` or ``async for message in subscriber``. Use it as an
    async context manager (or call :meth:`unsubscribe`) to leave the channel. When the
    channel closes, the messages already queued are still delivered, then iteration ends
    and ``receive`` raises :class:`ChannelClosedError`.

    Attributes:
        topics: The topic patterns subscribed to (``None``: every message).
    """

    __slots__ = (
        "_buffer",
        "_channel",
        "_closed",
        "_drop_oldest",
        "_dropped",
        "_getters",
        "_matchers",
        "_maxsize",
        "_missed",
        "_on_gap",
        "_overflow",
        "_putters",
        "_reason",
        "_received",
        "_source",
        "topics",
    )

    def __init__(
        self,
        channel: Channel[T],
        topics: tuple[str, ...] | None,
        maxsize: int,
        overflow: OverflowPolicy,
    ) -> None:
        self._channel = channel
        self.topics = topics
        self._matchers: tuple[Callable[[str], bool], ...] | None = (
            None if topics is None else tuple(compile_pattern(t) for t in topics)
        )
        self._maxsize = maxsize
        self._overflow = overflow
        self._buffer: deque[Message[T]] = deque(maxlen=maxsize)
        self._drop_oldest = overflow == "drop_oldest"
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._reason = ""
        self._received = 0
        self._dropped = 0
        self._missed = 0
        self._on_gap: GapCallback | None = None
        # Set by a transport that reads per subscriber (Streams): told when a message is
        # taken (acknowledgement, room to read more) and closed with the subscriber.
        self._source: SubscriberSource | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Subscriber topics={self.topics!r} queued={len(self._buffer)}/{self._maxsize} "
            f"overflow={self._overflow!r} {state}>"
        )

    @property
    def closed(self) -> bool:
        """Whether the subscription has ended (unsubscribed, disconnected or channel closed)."""
        return self._closed

    def matches(self, topic: str | None) -> bool:
        """Tell whether a message published under ``topic`` reaches this subscriber."""
        if self._matchers is None:
            return True
        if topic is None:
            return False
        return any(m(topic) for m in self._matchers)

    def qsize(self) -> int:
        """Messages waiting to be received."""
        return len(self._buffer)

    # -- publisher side (called by the channel, never awaits unless blocking)

    def _offer(self, message: Message[T]) -> int:
        """Queue without waiting: 1 queued, 0 not delivered, -1 full and blocking."""
        if self._closed:
            return 0
        buffer = self._buffer
        if len(buffer) < self._maxsize:
            buffer.append(message)
            if self._getters:
                self._wake(self._getters)
            return 1
        policy = self._overflow
        if policy == "drop_oldest":  # (publish does this inline; kept for completeness)
            buffer.append(message)  # deque(maxlen) drops the oldest
            self._dropped += 1
            self._channel._dropped += 1
            return 1
        if policy == "drop_newest":
            self._dropped += 1
            self._channel._dropped += 1
            return 0
        if policy == "disconnect":
            self._channel._disconnected += 1
            self._close("disconnected: the subscriber fell behind (queue full)")
            return 0
        return -1

    async def _put(self, message: Message[T]) -> int:
        """Queue, waiting for room (the ``block`` policy)."""
        loop = asyncio.get_running_loop()
        while not self._closed and len(self._buffer) >= self._maxsize:
            waiter: asyncio.Future[None] = loop.create_future()
            self._putters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._putters:
                    self._putters.remove(waiter)
                elif len(self._buffer) < self._maxsize:
                    # woken for room, then cancelled: pass the wake-up on
                    self._wake(self._putters)
                raise
        return self._offer(message)

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _gap(self, topic: str | None, count: int) -> None:
        self._missed += count
        if self._on_gap is not None:
            try:
                self._on_gap(topic, count)
            except Exception:  # a callback never breaks the reader
                logger.exception("on_gap callback of %r failed", self)

    def _close(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._reason = reason
        self._channel._remove(self)
        for waiters in (self._getters, self._putters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    # -- consumer side

    async def receive(self, timeout: float | None = None) -> Message[T]:  # noqa: ASYNC109
        """Return the next message, waiting for one if the queue is empty.

        Args:
            timeout: Seconds to wait at most; ``None`` waits forever.

        Raises:
            ChannelClosedError: If the subscription has ended and nothing is left queued.
            TimeoutError: If ``timeout`` elapsed first (also the builtin ``TimeoutError``).
        """
        if timeout is not None:
            require_positive("timeout", timeout)
        source = self._source
        if source is not None:
            source.release()  # the previous message is done with: acknowledged (auto_ack)
        if not self._buffer:
            if timeout is None:
                await self._wait()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await self._wait()
                except builtins.TimeoutError as exc:
                    raise TimeoutError(f"no message within {timeout} s", timeout=timeout) from exc
        message = self._buffer.popleft()
        self._received += 1
        if self._putters:
            self._wake(self._putters)
        if source is not None:
            source.hold(message)
        return message

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._buffer:
            if self._closed:
                raise ChannelClosedError(f"subscriber is closed ({self._reason})")
            waiter: asyncio.Future[None] = loop.create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._getters:
                    self._getters.remove(waiter)
                elif self._buffer:
                    # woken for a message, then cancelled: pass the wake-up on
                    self._wake(self._getters)
                raise

    def receive_nowait(self) -> Message[T] | None:
        """Return the next queued message, or ``None`` if none is waiting."""
        source = self._source
        if source is not None:
            source.release()
        if not self._buffer:
            return None
        message = self._buffer.popleft()
        self._received += 1
        if self._putters:
            self._wake(self._putters)
        if source is not None:
            source.hold(message)
        return message

    def __aiter__(self) -> Subscriber[T]:
        return self

    async def __anext__(self) -> Message[T]:
        try:
            return await self.receive()
        except ChannelClosedError:
            raise StopAsyncIteration from None

    def unsubscribe(self) -> None:
        """Leave the channel now (no await needed, e.g. in a ``finally``).

        Messages already queued can still be received; then iteration ends and
        :meth:`receive` raises :class:`ChannelClosedError`. Idempotent.
        """
        self._close("unsubscribed")

    async def close(self) -> None:
        """Leave the channel and wait until its transport released this subscription.

        The awaitable form of :meth:`unsubscribe` (the ``AsyncCloseable`` protocol).
        """
        self._close("unsubscribed")
        await self._channel._settle()

    async def __aenter__(self) -> Subscriber[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> SubscriberStats:
        """Counters: received, queued, dropped, disconnected."""
        return SubscriberStats(
            received=self._received,
            queued=len(self._buffer),
            dropped=self._dropped,
            disconnected=self._reason.startswith("disconnected"),
            missed=self._missed,
        )


@final
class Channel(Generic[T]):
    """A pub/sub channel: publishers send messages under topics, subscribers filter them.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     async with Channel[str]("news") as channel:
        ...         sub = await channel.subscribe(["user.*"])
        ...         await channel.publish("hi", topic="user.login")
        ...         return (await sub.receive()).data
        >>> asyncio.run(main())
        'hi'

    Across processes, give it a transport (the ``[redis]`` extra)::

        transport = RedisPubSubTransport("redis://localhost:6379/0")
        orders = Channel[Order]("orders", transport=transport, serializer=order_json)

    Args:
        name: A label for ``repr`` and errors; with a transport, also the name of the
            channel's keys (every process using the same name shares the messages).
        transport: Carries messages between processes; ``None`` (default) delivers
            in-process only.
        serializer: Encodes messages for the transport (:class:`JsonSerializer` by default;
            anything with ``dumps``/``loads``). Only used with a transport.

    .. versionchanged:: 0.2
        ``transport`` and ``serializer``.
    """

    __slots__ = (
        "_attached",
        "_closed",
        "_delivered",
        "_disconnected",
        "_dropped",
        "_missed",
        "_published",
        "_routes",
        "_serializer",
        "_subscribers",
        "_tasks",
        "_transport",
        "name",
    )

    def __init__(
        self,
        name: str = "channel",
        *,
        transport: Transport | None = None,
        serializer: Serializer[T] | None = None,
    ) -> None:
        self.name = check_name("name", name)
        if transport is not None and not isinstance(transport, Transport):
            raise ConfigurationTypeError(
                f"transport must be a Transport or None, got {transport!r}"
            )
        if serializer is not None and not isinstance(serializer, Serializer):
            raise ConfigurationTypeError(
                f"serializer must have dumps() and loads() (or be None), got {serializer!r}"
            )
        if serializer is not None and transport is None:
            raise ConfigurationError("serializer is only used with a transport; give one")
        self._transport = transport
        self._serializer: Serializer[T] = JsonSerializer() if serializer is None else serializer
        self._attached = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribers: dict[Subscriber[T], None] = {}  # insertion-ordered set
        self._routes: dict[str | None, tuple[Subscriber[T], ...]] = {}
        self._closed = False
        self._published = 0
        self._delivered = 0
        self._dropped = 0
        self._disconnected = 0
        self._missed = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Channel {self.name!r} subscribers={len(self._subscribers)} {state}>"

    @property
    def subscriber_count(self) -> int:
        """Subscribers now."""
        return len(self._subscribers)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def transport(self) -> Transport | None:
        """The transport, or ``None`` for in-process delivery."""
        return self._transport

    async def subscribe(
        self,
        topics: Iterable[str] | str | None = None,
        *,
        maxsize: int = 1000,
        overflow: OverflowPolicy = "drop_oldest",
        group: str | None = None,
        consumer: str | None = None,
        start: str = "$",
        auto_ack: bool = True,
        on_gap: GapCallback | None = None,
    ) -> Subscriber[T]:
        """Subscribe to the messages whose topic matches one of ``topics``.

        Args:
            topics: Dotted glob patterns (``["user.*", "system.*"]``) or one pattern;
                ``None`` receives every message, including those without a topic.
            maxsize: The subscriber's queue bound.
            overflow: What ``publish`` does when the queue is full: ``"drop_oldest"``
                (default) discards the oldest queued message, ``"drop_newest"`` discards the
                new one, ``"disconnect"`` ends the subscription, and ``"block"`` makes the
                publisher wait for room (after serving every other subscriber).
            group: Streams transport only: join this consumer group; each message then goes
                to one consumer of the group (competing consumers), is acknowledged
                (``auto_ack`` or :meth:`Message.ack`) and redelivered if unacknowledged.
            consumer: The consumer's name in the group (unique per process by default).
            start: Streams transport only: where a broadcast subscriber (or a new group)
                starts: ``"$"`` (only new messages, default), ``"0"`` (everything kept) or a
                saved stream id (after it).
            auto_ack: Acknowledge a group message when the subscriber asks for the next one
                (the code handling it returned). ``False``: only :meth:`Message.ack` does.
            on_gap: Called ``on_gap(topic, count)`` when a transport finds it lost messages
                of this subscriber's topics (Pub/Sub after a reconnect); counted in
                ``stats().missed`` either way.

        Returns:
            The new :class:`Subscriber`.

        Raises:
            ChannelClosedError: If the channel is closed.
            ConfigurationError: On an empty topic, a non-positive ``maxsize``, an unknown
                ``overflow``, or a Streams option without a transport that has them.
        """
        if self._closed:
            raise ChannelClosedError(f"channel {self.name!r} is closed")
        patterns: tuple[str, ...] | None
        if topics is None:
            patterns = None
        elif isinstance(topics, str):
            patterns = (check_name("topics", topics),)
        else:
            try:
                patterns = tuple(check_name("topics", t) for t in topics)
            except TypeError:
                raise ConfigurationTypeError(
                    f"topics must be a str, an iterable of str or None, got {topics!r}"
                ) from None
        require_positive_int("maxsize", maxsize)
        require_choice("overflow", overflow, _POLICIES)
        options = self._check_options(patterns, group, consumer, start, auto_ack, on_gap)
        subscriber = Subscriber(self, patterns, maxsize, overflow)
        subscriber._on_gap = on_gap
        self._subscribers[subscriber] = None
        self._routes.clear()
        transport = self._transport
        if transport is not None:
            try:
                await self._attach()
                await transport.subscribe(self, subscriber, options)
            except BaseException:
                self._subscribers.pop(subscriber, None)
                self._routes.clear()
                subscriber._closed = True
                raise
        return subscriber

    def _check_options(
        self,
        patterns: tuple[str, ...] | None,
        group: str | None,
        consumer: str | None,
        start: str,
        auto_ack: bool,
        on_gap: GapCallback | None,
    ) -> SubscribeOptions:
        if group is not None:
            check_name("group", group)
        if consumer is not None:
            check_name("consumer", consumer)
        check_name("start", start)
        if not isinstance(auto_ack, bool):
            raise ConfigurationTypeError(f"auto_ack must be a bool, got {auto_ack!r}")
        if on_gap is not None and not callable(on_gap):
            raise ConfigurationTypeError(f"on_gap must be callable or None, got {on_gap!r}")
        transport = self._transport
        streams = transport is not None and transport.supports_groups
        if not streams:
            for argument, given in (
                ("group", group is not None),
                ("consumer", consumer is not None),
                ("start", start != "$"),
            ):
                if given:
                    raise ConfigurationError(f"{argument} needs a Channel on a Streams transport")
        elif patterns is None or any(is_pattern(p) for p in patterns):
            raise ConfigurationError(
                f"topics must be exact topic names on a Streams transport, got {patterns!r}"
            )
        if consumer is not None and group is None:
            raise ConfigurationError("consumer needs a group")
        return SubscribeOptions(group=group, consumer=consumer, start=start, auto_ack=auto_ack)

    async def _attach(self) -> None:
        if not self._attached:
            assert self._transport is not None
            self._attached = True
            try:
                await self._transport.attach(self)
            except BaseException:
                self._attached = False
                raise

    def _remove(self, subscriber: Subscriber[T]) -> None:
        if self._subscribers.pop(subscriber, 0) is None:
            self._routes.clear()
            transport = self._transport
            if transport is not None and self._attached:
                # unsubscribe() is sync: release the transport's side in a task that
                # close() (of the subscriber or the channel) awaits.
                task = asyncio.get_running_loop().create_task(
                    transport.unsubscribe(self, subscriber)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _settle(self) -> None:
        """Wait for the transport to release the subscriptions ended so far."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _route(self, topic: str | None) -> tuple[Subscriber[T], ...]:
        if topic is not None:
            check_event_name(topic, "topic")
        route = tuple(s for s in self._subscribers if s.matches(topic))
        if len(self._routes) >= _ROUTE_CACHE_LIMIT:
            self._routes.clear()
        self._routes[topic] = route
        return route

    async def publish(
        self, data: T, topic: str | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> int:
        """Send ``data`` to every subscriber whose topics match ``topic``.

        Args:
            data: The payload.
            topic: A topic name (not a pattern); ``None`` reaches only subscribers without
                topics.
            metadata: Extra information, copied into ``message.metadata``.

        Returns:
            How many subscribers got the message queued.

        Raises:
            ChannelClosedError: If the channel is closed.
            ChannelConnectionError: With a transport, if its server cannot be reached.
        """
        if self._closed:
            raise ChannelClosedError(f"channel {self.name!r} is closed")
        if self._transport is not None:
            return await self._publish_out(data, topic, metadata)
        try:
            route = self._routes.get(topic)
        except TypeError:
            route = None
        if route is None:
            route = self._route(topic)
        self._published += 1
        # Message(data, topic, metadata) without the __init__ frame (publish hot path).
        message: Message[T] = _new_message(Message)
        message.data = data
        message.topic = topic
        message._metadata = None if metadata is None else copy_metadata(metadata)
        count = dropped = 0
        blocked: list[Subscriber[T]] | None = None
        for subscriber in route:
            # The common case inline: room in the queue. Routes never hold closed
            # subscribers when publish starts (closing clears them).
            buffer = subscriber._buffer
            if len(buffer) < subscriber._maxsize:
                buffer.append(message)
                if subscriber._getters:
                    subscriber._wake(subscriber._getters)
                count += 1
                continue
            if subscriber._drop_oldest:
                buffer.append(message)  # a full deque(maxlen) drops its oldest item itself
                subscriber._dropped += 1
                dropped += 1
                count += 1
                continue
            got = subscriber._offer(message)
            if got < 0:
                if blocked is None:
                    blocked = []
                blocked.append(subscriber)
            else:
                count += got
        if blocked is not None:
            count += await self._wait_for_room(blocked, message)
        self._delivered += count
        if dropped:
            self._dropped += dropped
        return count

    async def _publish_out(self, data: T, topic: str | None, metadata: Any) -> int:
        if topic is not None:
            check_event_name(topic, "topic")
        if metadata is not None:
            metadata = copy_metadata(metadata)
        transport = self._transport
        assert transport is not None
        await self._attach()
        count = await transport.publish(self, topic, metadata, self._serializer.dumps(data))
        self._published += 1
        return count

    def _decode(self, frame: Frame) -> Message[T] | None:
        """Turn a frame from the transport into a message; ``None`` if it does not decode."""
        try:
            data = self._serializer.loads(frame.payload)
        except Exception:
            return None
        message: Message[T] = _new_message(Message)
        message.data = data
        message.topic = frame.topic
        message._metadata = frame.metadata
        return message

    async def _deliver(self, message: Message[T]) -> int:
        """Fan a message that came through the transport out to the local subscribers."""
        topic = message.topic
        route = self._routes.get(topic)
        if route is None:
            route = self._route(topic)
        count = 0
        blocked: list[Subscriber[T]] = []
        for subscriber in route:
            got = subscriber._offer(message)  # 1 queued, 0 not, -1 full and blocking
            if got < 0:
                blocked.append(subscriber)
            else:
                count += got
        if blocked:
            count += await self._wait_for_room(blocked, message)
        self._delivered += count
        return count

    @staticmethod
    async def _wait_for_room(blocked: list[Subscriber[T]], message: Message[T]) -> int:
        """Queue ``message`` to the ``block`` subscribers that were full, in turn."""
        count = 0
        for subscriber in blocked:
            count += max(0, await subscriber._put(message))
        return count

    def _gap(self, topic: str | None, count: int) -> None:
        """The transport lost ``count`` messages of ``topic``: tell who asked."""
        self._missed += count
        for subscriber in tuple(self._subscribers):
            if subscriber.matches(topic):
                subscriber._gap(topic, count)

    async def close(self) -> None:
        """Close the channel: subscribers drain what is queued, then end.

        With a transport, also waits until every subscription is released there and the
        channel is detached from it (the last channel's detach closes its connections).
        """
        if self._closed:
            return
        self._closed = True
        for subscriber in list(self._subscribers):
            subscriber._close(f"channel {self.name!r} closed")
        if self._transport is not None:
            await self._settle()
            if self._attached:
                self._attached = False
                await self._transport.detach(self)

    async def __aenter__(self) -> Channel[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> ChannelStats:
        """Counters: published, delivered, dropped, disconnected, subscribers."""
        return ChannelStats(
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
            disconnected=self._disconnected,
            subscribers=len(self._subscribers),
            missed=self._missed,
            transport=None if self._transport is None else self._transport.stats(),
        )
