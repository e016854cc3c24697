"""RESP2, the Redis wire protocol: an incremental, size-capped request parser and reply encoders.

The parser is the only code that reads bytes from a :class:`~mtaio.cache.CacheNode` client, so
it is written defensively: every length is checked against a cap *before* anything is
buffered for it, every malformed byte raises :class:`RespProtocolError`, and the parser keeps
its progress between :meth:`RespParser.feed` calls so a large request arriving in many small
chunks is parsed in linear time.
"""

from __future__ import annotations

from typing import Final, TypeAlias, final

from mtaio.exceptions import CacheError

__all__ = ("Reply", "RespError", "RespParser", "RespProtocolError", "encode_reply")

_CRLF: Final = b"\r\n"
# Longest "*<n>\r\n" / "$<n>\r\n" header we accept: 20 digits cover any sane length and a
# header that long without CRLF is garbage, not a slow client.
_MAX_HEADER: Final = 32


@final
class RespProtocolError(CacheError, ValueError):
    """A client sent bytes that are not a well-formed RESP2 request, or one over the caps."""


@final
class RespParser:
    r"""Turns the byte stream of one client connection into commands (lists of ``bytes``).

    Accepts RESP arrays of bulk strings (what every client library and ``redis-cli`` send)
    and inline commands (``PING\\r\\n``, what ``telnet`` sends).

    Args:
        max_bulk: Largest bulk string accepted, in bytes.
        max_array: Most elements in one request array.
        max_inline: Longest inline command line, in bytes.
        max_request: Most bytes of bulk strings in one request array.
    """

    __slots__ = (
        "_buf",
        "_bulk_len",
        "_error",
        "_held",
        "_items",
        "_max_array",
        "_max_bulk",
        "_max_inline",
        "_max_request",
        "_remaining",
        "_request_bytes",
    )

    def __init__(
        self,
        *,
        max_bulk: int = 1 << 20,
        max_array: int = 1 << 16,
        max_inline: int = 1 << 16,
        max_request: int = 1 << 24,
    ) -> None:
        self._max_bulk = max_bulk
        self._max_array = max_array
        self._max_inline = max_inline
        self._max_request = max_request
        self._request_bytes = 0
        self._error: RespProtocolError | None = None
        self._buf = bytearray()
        self._items: list[bytes] = []
        self._held = 0  # bytes of the bulk strings in _items
        self._remaining = 0  # bulk strings still expected by the current array, 0 = between
        self._bulk_len = -1  # length of the bulk whose header was read, -1 = none

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed by a complete element."""
        return len(self._buf)

    @property
    def pending(self) -> int:
        """Bytes held for the request not complete yet (buffered plus parsed arguments)."""
        return len(self._buf) + self._held

    @property
    def partial(self) -> bool:
        """Whether a request has started and is not complete yet."""
        return self._remaining > 0 or bool(self._buf)

    def set_limits(self, *, max_bulk: int, max_array: int, max_request: int) -> None:
        """Change the caps for the requests still to come (e.g. once a client is trusted)."""
        self._max_bulk = max_bulk
        self._max_array = max_array
        self._max_request = max_request

    def release(self) -> None:
        """Drop everything buffered (the connection is being closed)."""
        self._buf = bytearray()
        self._items = []
        self._held = 0

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add received bytes and return every command they complete, in order.

        Raises:
            RespProtocolError: The stream is malformed or exceeds a cap. The connection
                cannot be resynchronised and must be closed.
        """
        if self._error is not None:
            raise self._error
        self._buf += data
        commands: list[list[bytes]] = []
        buf = self._buf
        pos = 0
        try:
            while True:
                if self._remaining == 0:
                    if pos >= len(buf):
                        break
                    if buf[pos] != 0x2A:  # not "*": an inline command
                        end = buf.find(_CRLF[1:], pos)
                        if end < 0:
                            if len(buf) - pos > self._max_inline:
                                raise RespProtocolError("inline command too long")
                            break
                        if end - pos > self._max_inline:
                            raise RespProtocolError("inline command too long")
                        line = bytes(buf[pos:end]).rstrip(b"\r")
                        pos = end + 1
                        words = line.split()
                        if words:
                            commands.append(words)
                        continue
                    header, pos = self._header(buf, pos)
                    if header is None:
                        break
                    count = self._length(header, self._max_array, "array")
                    if count <= 0:  # "*0" and the null array "*-1" carry no command
                        continue
                    self._remaining = count
                    self._items = []
                    self._held = 0
                    self._request_bytes = 0
                if self._bulk_len < 0:
                    if pos >= len(buf):
                        break
                    if buf[pos] != 0x24:  # "$"
                        raise RespProtocolError("expected a bulk string in the request array")
                    header, pos = self._header(buf, pos)
                    if header is None:
                        break
                    self._bulk_len = self._length(header, self._max_bulk, "bulk string")
                    if self._bulk_len < 0:
                        raise RespProtocolError("null bulk string in a request")
                    self._request_bytes += self._bulk_len
                    if self._request_bytes > self._max_request:
                        raise RespProtocolError(
                            f"request of more than {self._max_request} bytes refused"
                        )
                end = pos + self._bulk_len
                if len(buf) < end + 2:
                    break
                if buf[end : end + 2] != _CRLF:
                    raise RespProtocolError("bulk string not terminated by CRLF")
                self._items.append(bytes(buf[pos:end]))
                self._held += self._bulk_len
                pos = end + 2
                self._bulk_len = -1
                self._remaining -= 1
                if self._remaining == 0:
                    commands.append(self._items)
                    self._items = []
                    self._held = 0
        except RespProtocolError as exc:
            if not commands:
                raise
            # Hand out the commands that came before the bad bytes; the error is raised by
            # the next feed() (and is visible as `error` right away).
            self._error = exc
        finally:
            del buf[:pos]
        return commands

    @property
    def error(self) -> RespProtocolError | None:
        """The framing error met after the commands last returned, if any."""
        return self._error

    @staticmethod
    def _header(buf: bytearray, pos: int) -> tuple[bytes | None, int]:
        end = buf.find(_CRLF, pos + 1, pos + _MAX_HEADER)
        if end < 0:
            if len(buf) - pos >= _MAX_HEADER:
                raise RespProtocolError("length header too long")
            return None, pos
        return bytes(buf[pos + 1 : end]), end + 2

    @staticmethod
    def _length(header: bytes, cap: int, what: str) -> int:
        if not header or not (header.isdigit() or (header == b"-1")):
            raise RespProtocolError(f"invalid {what} length {header[:20]!r}")
        value = int(header)
        if value > cap:
            raise RespProtocolError(f"{what} of {value} exceeds the limit of {cap}")
        return value


@final
class RespError:
    """An error reply (``-ERR ...``); :func:`encode_reply` writes it with a leading ``-``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


Reply: TypeAlias = "bytes | int | str | list[Reply] | RespError | None"


def encode_reply(value: Reply) -> bytes:
    """Encode one reply: ``bytes`` as bulk, ``int`` as integer, ``str`` as a simple string.

    ``None`` is the null bulk string, a list is an array, a :class:`RespError` an error.
    """
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return b":1\r\n" if value else b":0\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        return b"+" + _one_line(value) + _CRLF
    if isinstance(value, RespError):
        return b"-" + _one_line(value.text) + _CRLF
    return b"*%d\r\n" % len(value) + b"".join(encode_reply(v) for v in value)


def _one_line(text: str) -> bytes:
    # Simple strings and errors cannot contain CR or LF: a message echoing client input
    # must not be able to forge extra replies.
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
