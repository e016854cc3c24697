"""The envelope every DistributedCache value travels in, and the clock that versions it.

Stored bytes of one version of a value::

    magic "mt" | format 1 | kind (0 value, 1 tombstone, 2 tagged value) | version (u64)
    | writer (u32) | expires_at (u64, wall-clock ms, 0 = never)
    | [kind 2 only: count (u16), then per tag: length (u16), tag (UTF-8), token (16 bytes)]
    | payload

A tagged value records the version token each of its tags had when it was written; it is
live only while every one of those tags still has that token (see ``_tags.py``).

The version is a hybrid logical clock (wall-clock milliseconds << 16 | a counter); the pair
(version, writer) orders writes totally, so replicas that disagree resolve the same way in
every client.

Everything read from a node is untrusted: whoever can write to a node can plant any header.
A version far ahead of this process's wall clock (beyond ``max_drift``) is therefore refused
instead of observed: observing it would drag the local clock to the end of its range, and
every later write of this process would either fail or lose to the planted one.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from typing import Final, final

from ._serial import CacheSerializationError

__all__ = (
    "HEADER_SIZE",
    "KIND_TAGGED",
    "KIND_TOMBSTONE",
    "KIND_VALUE",
    "TOKEN_SIZE",
    "Envelope",
    "HybridClock",
    "mac_context",
    "pack_envelope",
    "pack_header",
    "pack_tags",
    "unpack_envelope",
)

_HEADER: Final = struct.Struct(">2sBBQIQ")
_LEN: Final = struct.Struct(">I")
HEADER_SIZE: Final = _HEADER.size
_MAGIC: Final = b"mt"
KIND_VALUE: Final = 0
KIND_TOMBSTONE: Final = 1
KIND_TAGGED: Final = 2
TOKEN_SIZE: Final = 16
_U16: Final = struct.Struct(">H")
_COUNTER_BITS: Final = 16
_MAX_VERSION: Final = (1 << 64) - 1


@final
class Envelope:
    """A decoded envelope header plus its (still encoded) payload."""

    __slots__ = ("expires_at", "kind", "payload", "raw", "tags", "version", "writer")

    def __init__(
        self,
        kind: int,
        version: int,
        writer: int,
        expires_at: int,
        payload: bytes,
        raw: bytes,
        tags: tuple[tuple[str, bytes], ...] = (),
    ) -> None:
        self.kind = kind
        self.version = version
        self.writer = writer
        self.expires_at = expires_at
        self.payload = payload
        self.raw = raw
        self.tags = tags

    @property
    def is_value(self) -> bool:
        """Whether this is a value (tagged or not), not a tombstone."""
        return self.kind != KIND_TOMBSTONE

    @property
    def order(self) -> tuple[int, int]:
        """The total order of writes: newer compares greater."""
        return (self.version, self.writer)

    @property
    def header(self) -> bytes:
        """The header bytes (with the tag section), as a context-binding serializer signs."""
        return self.raw[: len(self.raw) - len(self.payload)]


def pack_header(kind: int, version: int, writer: int, expires_at: int) -> bytes:
    """The header of one version of a value (the payload follows it)."""
    return _HEADER.pack(_MAGIC, 1, kind, version, writer, expires_at)


def pack_envelope(kind: int, version: int, writer: int, expires_at: int, payload: bytes) -> bytes:
    """Build the stored bytes of one version of a value."""
    return _HEADER.pack(_MAGIC, 1, kind, version, writer, expires_at) + payload


def unpack_envelope(raw: bytes) -> Envelope:
    """Parse stored bytes; raise :class:`CacheSerializationError` when they are not ours."""
    if len(raw) < HEADER_SIZE:
        raise CacheSerializationError("stored value is not an mtaio envelope (too short)")
    magic, fmt, kind, version, writer, expires_at = _HEADER.unpack_from(raw)
    if magic != _MAGIC or fmt != 1 or kind not in (KIND_VALUE, KIND_TOMBSTONE, KIND_TAGGED):
        raise CacheSerializationError("stored value is not an mtaio envelope (bad header)")
    if kind != KIND_TAGGED:
        return Envelope(kind, version, writer, expires_at, raw[HEADER_SIZE:], raw)
    tags, end = _unpack_tags(raw)
    return Envelope(kind, version, writer, expires_at, raw[end:], raw, tags)


def pack_tags(tags: Sequence[tuple[str, bytes]]) -> bytes:
    """The tag section of a tagged value: each tag with the token it had at write time."""
    out = [_U16.pack(len(tags))]
    for tag, token in tags:
        name = tag.encode()
        out += (_U16.pack(len(name)), name, token)
    return b"".join(out)


def _unpack_tags(raw: bytes) -> tuple[tuple[tuple[str, bytes], ...], int]:
    bad = CacheSerializationError("stored value is not an mtaio envelope (bad tag section)")
    try:
        (count,) = _U16.unpack_from(raw, HEADER_SIZE)
        pos = HEADER_SIZE + 2
        tags = []
        for _ in range(count):
            (size,) = _U16.unpack_from(raw, pos)
            pos += 2
            end = pos + size + TOKEN_SIZE
            if end > len(raw):
                raise bad
            tags.append((raw[pos : pos + size].decode(), raw[pos + size : end]))
            pos = end
    except (struct.error, UnicodeDecodeError) as exc:
        raise bad from exc
    return tuple(tags), pos


def mac_context(rkey: bytes, header: bytes) -> bytes:
    """What a context-binding serializer signs besides the value: the key and the header.

    The key on the node carries the namespace (``"<namespace>:<key>"``), so a signed value
    copied to another key or namespace, or given another version or expiry, no longer
    verifies. The key is length-prefixed so that no (key, header) pair reads as another.
    """
    return _LEN.pack(len(rkey)) + rkey + header


@final
class HybridClock:
    """A hybrid logical clock that never goes back and never jumps far ahead of wall time.

    ``now()`` returns ``max(wall ms << 16, last + 1)``. ``observe(v)`` moves ``last`` up to
    a version read from a node, so that this process's next write orders after it, but only
    when ``v`` is at most ``max_drift_ms`` ahead of the local wall clock: a version beyond
    that is a clock anomaly (a badly skewed writer, or a planted value) and is refused.

    Args:
        max_drift_ms: How far ahead of the local wall clock an observed version may be.
        wall: The wall clock, in seconds (``time.time``); replaceable in tests.
    """

    __slots__ = ("_last", "_max_drift", "_wall")

    def __init__(self, max_drift_ms: int, wall: Callable[[], float] = time.time) -> None:
        self._last = 0
        self._max_drift = max_drift_ms
        self._wall = wall

    @property
    def last(self) -> int:
        """The largest version handed out or observed so far."""
        return self._last

    def now(self) -> int:
        """A version newer than every earlier one of this clock."""
        phys = int(self._wall() * 1000) << _COUNTER_BITS
        last = self._last
        self._last = value = phys if phys > last else last + 1
        return value

    def observe(self, version: int) -> bool:
        """Let ``version`` advance the clock; False (and no change) when it is too far ahead."""
        if version <= self._last:
            return True
        limit = (int(self._wall() * 1000) + self._max_drift + 1) << _COUNTER_BITS
        if version >= limit or version >= _MAX_VERSION:
            return False
        self._last = version
        return True
