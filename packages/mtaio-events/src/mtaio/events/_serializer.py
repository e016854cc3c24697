"""Serializers: how a :class:`~mtaio.events.Channel` turns messages into bytes for a transport.

Only transports that leave the process use one. JSON is the default; anything else plugs in
through the two-method :class:`Serializer` protocol. Nothing here unpickles: bytes read from
Redis come from the network and are decoded by code that cannot run what it reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, final, runtime_checkable

from mtaio.exceptions import ConfigurationTypeError, EventError

__all__ = ("JsonSerializer", "MalformedMessageError", "Serializer")

T = TypeVar("T")

# Built once: ``json.dumps`` with options builds an encoder per call, and ``json.loads`` of
# bytes sniffs their encoding first (dumps always writes UTF-8).
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decoder = json.JSONDecoder()
_scan_json = _decoder.raw_decode


def decode_json(text: str) -> Any:
    """``json.loads(text)``, without its whitespace scans when there is none around."""
    try:
        value, end = _scan_json(text)
    except ValueError:
        end = -1
    if end == len(text):
        return value
    return _decoder.decode(text)  # whitespace around the value, or the error to raise


class MalformedMessageError(EventError, ValueError):
    """Bytes read from a transport could not be decoded into a message.

    Transports count and drop such messages (``stats().malformed``); a reader never stops
    because of one.
    """


@runtime_checkable
class Serializer(Protocol[T]):
    """Turns a message's data into bytes and back.

    ``loads`` receives bytes from the network: it must not execute or unpickle them, and it
    raises (any exception) on what it cannot decode.
    """

    def dumps(self, value: T, /) -> bytes:
        """Encode ``value``."""
        ...

    def loads(self, data: bytes, /) -> T:
        """Decode what :meth:`dumps` produced."""
        ...


@final
class JsonSerializer(Generic[T]):
    """JSON (UTF-8), the default serializer of channels with a transport.

    Example:
        >>> from dataclasses import asdict, dataclass
        >>> @dataclass
        ... class Order:
        ...     id: int
        >>> orders = JsonSerializer[Order](encode=asdict, decode=lambda d: Order(**d))
        >>> orders.loads(orders.dumps(Order(7)))
        Order(id=7)

    Args:
        encode: Turns a value into something ``json.dumps`` takes (e.g.
            ``dataclasses.asdict``, ``Model.model_dump``); the identity by default.
        decode: Turns what ``json.loads`` returns into a value (e.g. ``Order(**d)``,
            ``Model.model_validate``); the identity by default.
    """

    __slots__ = ("_decode", "_encode")

    def __init__(
        self,
        *,
        encode: Callable[[T], Any] | None = None,
        decode: Callable[[Any], T] | None = None,
    ) -> None:
        for argument, value in (("encode", encode), ("decode", decode)):
            if value is not None and not callable(value):
                raise ConfigurationTypeError(f"{argument} must be callable or None, got {value!r}")
        self._encode = encode
        self._decode = decode

    def dumps(self, value: T, /) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON."""
        plain = value if self._encode is None else self._encode(value)
        return _encode_json(plain).encode()

    def loads(self, data: bytes, /) -> T:
        """Decode UTF-8 JSON bytes (then ``decode``)."""
        plain = decode_json(str(data, "utf-8"))
        return plain if self._decode is None else self._decode(plain)

    def __repr__(self) -> str:
        return "JsonSerializer()"
