"""Serializers for :class:`~mtaio.cache.DistributedCache`, and the envelope values travel in.

Security rule: bytes read from a node are only ever decoded by the serializer the user chose.
The default is JSON; pickle is reachable only through :class:`SignedPickleSerializer`, which
verifies an HMAC *before* unpickling and refuses anything unsigned or altered. Under a
:class:`~mtaio.cache.DistributedCache` the HMAC also covers the key (with its namespace) and
the envelope header, so a signed value moved to another key, or replayed with another
version or expiry, is refused too.

Every decode failure surfaces as :class:`CacheSerializationError`, whatever the serializer
raised (a deeply nested JSON document's ``RecursionError`` included): the cache treats such
a replica as corrupt, skips it when another answers, and repairs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
from typing import Any, ClassVar, Final, Protocol, final, runtime_checkable

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


def context_binding(serializer: object) -> bool:
    """Whether ``serializer`` takes ``context=`` in ``dumps``/``loads`` to bind a MAC to it.

    A serializer opts in with a class attribute ``binds_context = True``; its ``dumps`` and
    ``loads`` then accept a keyword-only ``context: bytes`` (the key and the envelope header).
    """
    return getattr(serializer, "binds_context", False) is True


def load_or_raise(serializer: Serializer, data: bytes) -> Any:
    """``serializer.loads(data)``, any failure turned into :class:`CacheSerializationError`."""
    try:
        return serializer.loads(data)
    except CacheSerializationError:
        raise
    except (Exception, RecursionError) as exc:
        raise CacheSerializationError(
            f"stored value could not be decoded ({type(exc).__name__}: {exc})"
        ) from exc


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
        except RecursionError as exc:  # "[[[[...]]]]" nested deeper than the stack allows
            raise CacheSerializationError("stored JSON value is nested too deeply") from exc


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


_PICKLE_MAGIC: Final = b"mtP2"
_DIGEST_SIZE: Final = 32
_CONTEXT_LEN: Final = struct.Struct(">I")


@final
class SignedPickleSerializer:
    """Pickle, signed with HMAC-SHA256: any Python value, and only your own payloads decode.

    Every payload carries an HMAC made with ``key``; :meth:`loads` recomputes it and refuses
    (without unpickling) anything unsigned, signed with another key, or altered. Under a
    :class:`~mtaio.cache.DistributedCache` the HMAC covers the pickle *and* its place: the
    key on the node (namespace included) and the envelope header (version, writer, expiry).
    A signed value copied to another key or namespace, or replayed with another header, is
    refused. Every process sharing the cache needs the same key; keep it secret, because
    whoever holds it can make this process unpickle arbitrary data.

    Args:
        key: The shared secret, at least 16 bytes (``secrets.token_bytes(32)``).
        protocol: The pickle protocol used by :meth:`dumps`.
    """

    __slots__ = ("_key", "_protocol")

    binds_context: ClassVar[bool] = True
    """``dumps``/``loads`` take ``context=``: the cache binds each MAC to its key and header."""

    def __init__(self, key: bytes, *, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        if not isinstance(key, bytes):
            raise ConfigurationTypeError(f"key must be bytes, got {type(key).__name__}")
        if len(key) < 16:
            raise ConfigurationError(f"key must be at least 16 bytes, got {len(key)}")
        self._key = key
        self._protocol = protocol

    def _sign(self, context: bytes, data: bytes) -> bytes:
        mac = hmac.new(self._key, _PICKLE_MAGIC, hashlib.sha256)
        mac.update(_CONTEXT_LEN.pack(len(context)))
        mac.update(context)
        mac.update(data)
        return mac.digest()

    def dumps(self, value: Any, *, context: bytes = b"") -> bytes:
        """Pickle ``value``; prepend a magic and the HMAC of ``context`` and the pickle.

        Args:
            value: Any picklable value.
            context: Bytes the signature is bound to besides the pickle; :meth:`loads`
                must be given the same. A DistributedCache passes the key and the header.
        """
        try:
            data = pickle.dumps(value, protocol=self._protocol)
        except Exception as exc:
            raise CacheSerializationError(
                f"cannot pickle a value of type {type(value).__name__}: {exc}"
            ) from exc
        return _PICKLE_MAGIC + self._sign(context, data) + data

    def loads(self, data: bytes, *, context: bytes = b"") -> Any:
        """Verify the signature over ``context`` and the pickle, then unpickle.

        Raises:
            CacheSerializationError: The payload is unsigned, signed with another key or
                for another context (a moved or replayed value), altered, or does not
                unpickle.
        """
        head = len(_PICKLE_MAGIC) + _DIGEST_SIZE
        if len(data) < head or not data.startswith(_PICKLE_MAGIC):
            raise CacheSerializationError("refusing an unsigned payload (no mtaio signature)")
        mac = data[len(_PICKLE_MAGIC) : head]
        body = data[head:]
        if not hmac.compare_digest(mac, self._sign(context, body)):
            raise CacheSerializationError(
                "refusing a payload whose signature does not verify "
                "(another key, altered, or moved from another key or version)"
            )
        try:
            return pickle.loads(body)  # authenticated above
        except Exception as exc:  # e.g. a class that no longer exists in this process
            raise CacheSerializationError(f"signed payload does not unpickle: {exc}") from exc
