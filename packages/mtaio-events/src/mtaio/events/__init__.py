"""An asyncio event emitter with priorities, wildcards and operators, and pub/sub channels.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``.

* ``_event``: :class:`Event`, :class:`EventPriority` and the dotted glob patterns.
* ``_emitter``: :class:`EventEmitter` (priorities, wildcards, operators, batching).
* ``_channel``: :class:`Channel`, :class:`Subscriber`, :class:`Message` (pub/sub).
* ``_transport``: :class:`Transport`, the layer under a channel, and its wire frames.
* ``_serializer``: :class:`Serializer`, :class:`JsonSerializer`.
* ``_redis_pubsub``, ``_redis_streams``: the Redis transports (``[redis]`` extra).
"""

import logging as _logging
from importlib.metadata import version as _version

from mtaio.typing import publish_module as _publish_module

from ._channel import Channel as Channel
from ._channel import ChannelClosedError as ChannelClosedError
from ._channel import ChannelStats as ChannelStats
from ._channel import Message as Message
from ._channel import OverflowPolicy as OverflowPolicy
from ._channel import Subscriber as Subscriber
from ._channel import SubscriberStats as SubscriberStats
from ._emitter import EmitterStats as EmitterStats
from ._emitter import ErrorPolicy as ErrorPolicy
from ._emitter import EventEmitter as EventEmitter
from ._emitter import Handler as Handler
from ._event import Event as Event
from ._event import EventPriority as EventPriority
from ._redis_pubsub import RedisPubSubTransport as RedisPubSubTransport
from ._redis_streams import RedisStreamsTransport as RedisStreamsTransport
from ._serializer import JsonSerializer as JsonSerializer
from ._serializer import MalformedMessageError as MalformedMessageError
from ._serializer import Serializer as Serializer
from ._transport import ChannelConnectionError as ChannelConnectionError
from ._transport import SubscribeOptions as SubscribeOptions
from ._transport import Transport as Transport
from ._transport import TransportStats as TransportStats

__version__: str = _version("mtaio-events")

__all__ = (
    "Event",
    "EventPriority",
    "EventEmitter",
    "EmitterStats",
    "ErrorPolicy",
    "Handler",
    "Channel",
    "Subscriber",
    "Message",
    "ChannelClosedError",
    "ChannelStats",
    "SubscriberStats",
    "OverflowPolicy",
    "Transport",
    "TransportStats",
    "SubscribeOptions",
    "ChannelConnectionError",
    "RedisPubSubTransport",
    "RedisStreamsTransport",
    "Serializer",
    "JsonSerializer",
    "MalformedMessageError",
)

# A library never configures logging: without this, Python's last-resort handler would
# print mtaio.events records to stderr in applications that set up no logging at all.
_logging.getLogger("mtaio.events").addHandler(_logging.NullHandler())

# Reprs, tracebacks and pickles name the public path (mtaio.events.X), not a private module.
_publish_module(globals())
