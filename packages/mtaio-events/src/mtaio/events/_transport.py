"""What lies under a :class:`~mtaio.events.Channel`: the transport abstraction.

A channel without a transport delivers in-process, exactly as before (its publish path does
not even look at this module). A channel given a transport hands each publish to it, and the
transport hands back what arrives, which the channel fans out to its subscribers with their
own queues, patterns and overflow policies. Two transports ship with the ``[redis]`` extra:
:class:`~mtaio.events.RedisPubSubTransport` (at-most-once fan-out) and
:class:`~mtaio.events.RedisStreamsTransport` (durable, consumer groups).

On the wire a message is one frame: a JSON header line (topic, metadata, the publisher's id
and its sequence number for the topic), a newline, then the serializer's bytes. Decoding
never evaluates or unpickles anything; a frame that does not parse is counted and dropped.
"""

from __future__ import annotations

import abc
import builtins
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, final

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, EventError
from mtaio.typing import connect_redis

from ._serializer import MalformedMessageError, decode_json

if TYPE_CHECKING:
    from ._channel import Channel, Subscriber

__all__ = (
    "ChannelConnectionError",
    "SubscribeOptions",
    "Transport",
    "TransportStats",
)

GapCallback = Callable[[str | None, int], Any]


class ChannelConnectionError(EventError, ConnectionError):
    """A transport could not reach its server (also the builtin ``ConnectionError``)."""


@final
@dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters of a transport.

    Attributes:
        kind: ``"pubsub"`` or ``"streams"``.
        connected: Whether the subscription connection is up now (Pub/Sub) or the last
            read succeeded (Streams).
        reconnects: Connections re-established after a loss.
        missed: Messages known to be lost (sequence gaps seen after a reconnect).
        malformed: Frames read that could not be decoded (dropped).
        redelivered: Messages claimed again after their consumer went idle (Streams groups).
        dead_lettered: Messages moved to the dead-letter stream (Streams groups).
        subscriptions: Redis channels and patterns subscribed now (Pub/Sub), or readers
            running now (Streams).
    """

    kind: str
    connected: bool
    reconnects: int
    missed: int
    malformed: int
    redelivered: int
    dead_lettered: int
    subscriptions: int


@final
@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """What a subscriber asked of its transport (see :meth:`Channel.subscribe`)."""

    group: str | None
    consumer: str | None
    start: str
    auto_ack: bool


class Transport(abc.ABC):
    """Carries a channel's messages between processes.

    A transport may serve several channels (one Pub/Sub connection carries them all). The
    channel calls these methods; applications only construct a transport, pass it to
    ``Channel(..., transport=...)`` and read :meth:`stats`. When the last channel detaches
    the transport releases its connections and tasks; it reconnects if used again.
    """

    __slots__ = ()

    #: What :meth:`mtaio.events.Channel.subscribe` accepts with this transport.
    supports_groups: bool = False
    supports_patterns: bool = True

    @abc.abstractmethod
    async def attach(self, channel: Channel[Any]) -> None:
        """Start serving ``channel`` (called once, before its first publish or subscribe)."""

    @abc.abstractmethod
    async def detach(self, channel: Channel[Any]) -> None:
        """Stop serving ``channel``; the last detach releases every connection and task."""

    @abc.abstractmethod
    async def publish(
        self,
        channel: Channel[Any],
        topic: str | None,
        metadata: dict[str, Any] | None,
        payload: bytes,
    ) -> int:
        """Send one message (payload already serialized); return what the server reports."""

    @abc.abstractmethod
    async def subscribe(
        self, channel: Channel[Any], subscriber: Subscriber[Any], options: SubscribeOptions
    ) -> None:
        """Start delivering to ``subscriber``; return once nothing published later is missed."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: Channel[Any], subscriber: Subscriber[Any]) -> None:
        """Stop delivering to ``subscriber`` and release what it held."""

    @abc.abstractmethod
    def stats(self) -> TransportStats:
        """Counters (see :class:`TransportStats`)."""


# ---------------------------------------------------------------------------- frames

_PUBLISHER = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def new_publisher_id() -> str:
    """A process-unique id for one transport's publisher side."""
    return f"{_PUBLISHER}-{uuid.uuid4().hex[:6]}"


# One encoder for every frame: ``json.dumps`` with options builds a new encoder per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_frame(
    topic: str | None,
    metadata: Mapping[str, Any] | None,
    publisher: str,
    seq: int,
    payload: bytes,
) -> bytes:
    """Build a frame: the JSON header line, a newline, the payload."""
    header: dict[str, Any] = {"t": topic, "p": publisher, "s": seq}
    if metadata:
        header["m"] = metadata
    try:
        head = _encode_json(header).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigurationTypeError(
            f"metadata must be JSON-serializable with a transport, got {metadata!r}"
        ) from exc
    return head + b"\n" + payload


def frame_head(topic: str | None, publisher: str) -> bytes:
    r"""The bytes of a frame without metadata up to its sequence number.

    ``frame_head(topic, publisher) + b"%d}\n" % seq + payload`` is the frame
    :func:`encode_frame` builds for the same arguments and no metadata: a publisher sending
    many messages under one topic formats its header once.
    """
    return encode_frame(topic, None, publisher, 0, b"")[: -len(b"0}\n")]


@final
@dataclass(slots=True)
class Frame:
    """A decoded frame (payload still encoded)."""

    topic: str | None
    metadata: dict[str, Any] | None
    publisher: str
    seq: int
    payload: bytes


_HEADS_LIMIT = 10_000  # header prefixes remembered; beyond it the memory starts over
# A header's bytes up to ``,"s":`` -> its topic and publisher, for headers without metadata
# whose parse with ``,"s":0}`` appended succeeded (see decode_frame).
_heads: dict[bytes, tuple[str | None, str]] = {}


def decode_frame(raw: object) -> Frame:
    """Parse a frame read from the network, trusting nothing in it.

    A publisher's headers differ only by their sequence number, so a header whose bytes
    up to ``,"s":`` were seen before only has its number read: ``known + b',"s":0}'``
    parsed to a valid header without metadata and sequence 0, hence
    ``known + b',"s":N}'`` (N plain ASCII digits without a leading zero, as JSON writes a
    non-negative integer) parses to the same header with sequence N.

    Raises:
        MalformedMessageError: On anything but a well-formed frame.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedMessageError(f"a frame must be bytes, got {type(raw).__name__}")
    data = bytes(raw)
    head, sep, payload = data.partition(b"\n")
    if not sep:
        raise MalformedMessageError("no header line in the frame")
    known, mark, number = head.rpartition(b',"s":')
    if mark and number[-1:] == b"}":
        digits = number[:-1]
        names = _heads.get(known)
        if (
            names is not None
            and digits.isdigit()  # ASCII digits only, for bytes
            and (digits[:1] != b"0" or len(digits) == 1)  # no leading zero, as in JSON
            and len(digits) < 20
        ):
            return Frame(names[0], None, names[1], int(digits), payload)
    frame = _parse_header(head, payload)
    if mark and frame.metadata is None and known not in _heads:
        try:
            again = _parse_header(known + b',"s":0}', b"")
        except MalformedMessageError:
            return frame
        if again.seq == 0 and again.metadata is None:
            if len(_heads) >= _HEADS_LIMIT:
                _heads.clear()
            _heads[known] = (again.topic, again.publisher)
    return frame


def _parse_header(head: bytes, payload: bytes) -> Frame:
    try:
        header = decode_json(head.decode())
    except ValueError as exc:  # also UnicodeDecodeError
        raise MalformedMessageError(f"unreadable frame header: {exc}") from None
    if type(header) is not dict:
        raise MalformedMessageError("the frame header is not an object")
    topic, publisher, seq = header.get("t"), header.get("p"), header.get("s")
    metadata = header.get("m")
    if topic is not None and (type(topic) is not str or not topic):
        raise MalformedMessageError("bad topic in the frame header")
    if type(publisher) is not str or type(seq) is not int:
        raise MalformedMessageError("bad publisher or sequence in the frame header")
    if metadata is not None and type(metadata) is not dict:
        raise MalformedMessageError("bad metadata in the frame header")
    return Frame(topic, metadata, publisher, seq, payload)


def check_prefix(prefix: object) -> str:
    """Validate a key prefix: a non-empty str without braces (they delimit hash tags)."""
    if not isinstance(prefix, str):
        raise ConfigurationTypeError(f"prefix must be a non-empty str, got {prefix!r}")
    if not prefix or "{" in prefix or "}" in prefix:
        raise ConfigurationError(f"prefix must be a non-empty str without braces, got {prefix!r}")
    return prefix


_CONNECTION_ERRORS = ("ConnectionError", "TimeoutError", "BusyLoadingError")


def connection_error(exc: BaseException, what: str) -> BaseException:
    """Return ``exc`` as a :class:`ChannelConnectionError` when it is a lost connection.

    redis-py's ``ConnectionError``/``TimeoutError`` do not derive from the builtins; they are
    recognised by name so this module does not import redis-py.
    """
    if isinstance(exc, OSError | builtins.TimeoutError) or any(
        cls.__name__ in _CONNECTION_ERRORS for cls in type(exc).__mro__
    ):
        return ChannelConnectionError(f"{what} failed: {exc}")
    return exc


R = TypeVar("R")


def redis_client(target: object) -> Any:
    """The ``redis.asyncio`` client of a transport: ``target`` itself, or one made from a URL.

    A client made here speaks RESP2, which every server of the Redis protocol answers
    (redis-py 8 would open with ``HELLO 3``, refused by the embedded CacheNode and older
    servers). Typed ``Any``: redis-py's stubs type stream and Pub/Sub replies as unions of
    every protocol's shapes; the transports check what they read instead.
    """
    options = {"protocol": 2} if isinstance(target, str) else {}
    return connect_redis(target, extra="mtaio-events[redis]", argument="redis", **options)


async def redis_call(awaitable: Awaitable[R], what: str) -> R:
    """Await a Redis command, turning a lost connection into :class:`ChannelConnectionError`."""
    try:
        return await awaitable
    except Exception as exc:
        error = connection_error(exc, what)
        if error is exc:
            raise
        raise error from exc
