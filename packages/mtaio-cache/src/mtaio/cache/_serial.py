"""Serializers for :class:`~mtaio.cache.DistributedCache`, and the envelope values travel in.

Security rule: bytes read from a node are only ever decoded by the serializer the user chose.
The default is JSON; pickle is reachable only through :class:`SignedPickleSerializer`, which
verifies an HMAC over the payload *before* unpickling and refuses anything unsigned or altered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
from typing import Any, Final, Protocol, final, runtime_checkable

from mtaio.exceptions import CacheError, ConfigurationError, ConfigurationTypeError

__all__ = (
    "CacheSerializationError",
    "JsonSerializer",
    "RawSerializer",
    "Serializer",
    "SignedPickleSerializer",
)


class CacheSerializationError(CacheError, ValueError):
    """A value could not be encoded for, or decoded from, a cache node.

    Also raised for bytes under the cache's namespace that are not a valid envelope or whose
    signature does not verify: they are refused, never decoded.
    """


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back. Implement both methods to plug in a format."""

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise :class:`CacheSerializationError` when it cannot be."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode bytes produced by :meth:`dumps`; raise :class:`CacheSerializationError`."""
        ...


@final
class JsonSerializer:
    """JSON (UTF-8), the default: safe to decode, readable with ``redis-cli``.

    JSON has no tuples or sets: a tuple comes back as a list. A value JSON cannot represent
    (a set, a datetime, an object) fails at ``set`` with :class:`CacheSerializationError`.
    """

    __slots__ = ()

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as compact JSON."""
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise CacheSerializationError(
                f"cannot encode a value of type {type(value).__name__} as JSON ({exc}); "
                "pass serializer= to DistributedCache for other types"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode JSON bytes."""
        try:
            return json.loads(data)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise CacheSerializationError(f"stored value is not valid JSON: {exc}") from exc


@final
class RawSerializer:
    """Stores ``bytes`` values as they are (no copy, no format); other types are refused."""

    __slots__ = ()

    def dumps(self, value: Any) -> bytes:
        """Return ``value`` itself, which must be ``bytes``."""
        if not isinstance(value, bytes):
            raise CacheSerializationError(
                f"RawSerializer stores bytes only, got {type(value).__name__}"
            )
        return value

    def loads(self, data: bytes) -> Any:
        """Return the stored bytes."""
        return data


_PICKLE_MAGIC: Final = b"mtP1"
_DIGEST_SIZE: Final = 32


@final
class SignedPickleSerializer:
    """Pickle, signed with HMAC-SHA256: any Python value, and only your own payloads decode.

    Every payload carries an HMAC of its pickle made with ``key``; :meth:`loads` recomputes
    it and refuses (without unpickling) anything unsigned, signed with another key, or altered.
    Every process sharing the cache needs the same key; keep it secret, because whoever holds
    it can make this process unpickle arbitrary data.

    Args:
        key: The shared secret, at least 16 bytes (``secrets.token_bytes(32)``).
        protocol: The pickle protocol used by :meth:`dumps`.
    """

    __slots__ = ("_key", "_protocol")

    def __init__(self, key: bytes, *, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        if not isinstance(key, bytes):
            raise ConfigurationTypeError(f"key must be bytes, got {type(key).__name__}")
        if len(key) < 16:
            raise ConfigurationError(f"key must be at least 16 bytes, got {len(key)}")
        self._key = key
        self._protocol = protocol

    def _sign(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value`` and prepend a magic and the HMAC of the pickle."""
        try:
            data = pickle.dumps(value, protocol=self._protocol)
        except Exception as exc:
            raise CacheSerializationError(
                f"cannot pickle a value of type {type(value).__name__}: {exc}"
            ) from exc
        return _PICKLE_MAGIC + self._sign(data) + data

    def loads(self, data: bytes) -> Any:
        """Verify the signature, then unpickle; refuse unsigned or tampered payloads."""
        head = len(_PICKLE_MAGIC) + _DIGEST_SIZE
        if len(data) < head or not data.startswith(_PICKLE_MAGIC):
            raise CacheSerializationError("refusing an unsigned payload (no mtaio signature)")
        mac = data[len(_PICKLE_MAGIC) : head]
        body = data[head:]
        if not hmac.compare_digest(mac, self._sign(body)):
            raise CacheSerializationError("refusing a payload whose signature does not verify")
        return pickle.loads(body)  # authenticated above


# The envelope every value is stored in on a node:
#   magic "mt" | format 1 | kind (0 value, 1 tombstone) | version (u64) | writer (u32)
#   | expires_at (u64, wall-clock ms, 0 = never) | payload
# The version is a hybrid logical clock; (version, writer) orders writes totally, so replicas
# that disagree resolve the same way in every client.
_HEADER: Final = struct.Struct(">2sBBQIQ")
HEADER_SIZE: Final = _HEADER.size
_MAGIC: Final = b"mt"
KIND_VALUE: Final = 0
KIND_TOMBSTONE: Final = 1


@final
class Envelope:
    """A decoded envelope header plus its (still encoded) payload."""

    __slots__ = ("expires_at", "kind", "payload", "raw", "version", "writer")

    def __init__(
        self, kind: int, version: int, writer: int, expires_at: int, payload: bytes, raw: bytes
    ) -> None:
        self.kind = kind
        self.version = version
        self.writer = writer
        self.expires_at = expires_at
        self.payload = payload
        self.raw = raw

    @property
    def order(self) -> tuple[int, int]:
        """The total order of writes: newer compares greater."""
        return (self.version, self.writer)


def pack_envelope(kind: int, version: int, writer: int, expires_at: int, payload: bytes) -> bytes:
    """Build the stored bytes of one version of a value."""
    return _HEADER.pack(_MAGIC, 1, kind, version, writer, expires_at) + payload


def unpack_envelope(raw: bytes) -> Envelope:
    """Parse stored bytes; raise :class:`CacheSerializationError` when they are not ours."""
    if len(raw) < HEADER_SIZE:
        raise CacheSerializationError("stored value is not an mtaio envelope (too short)")
    magic, fmt, kind, version, writer, expires_at = _HEADER.unpack_from(raw)
    if magic != _MAGIC or fmt != 1 or kind not in (KIND_VALUE, KIND_TOMBSTONE):
        raise CacheSerializationError("stored value is not an mtaio envelope (bad header)")
    return Envelope(kind, version, writer, expires_at, raw[HEADER_SIZE:], raw)
