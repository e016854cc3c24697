r"""One CacheNode client connection: its state, and output written as it is produced.

Replies are appended to a small local buffer that is written out in one call per batch of
pipelined commands (fast when replies are small) or as soon as it holds ``_FLUSH_AT`` bytes;
a large value and each element of a large array go out on their own, and whenever the
socket's send buffer is above the transport's high-water mark the connection waits for the
client to read (``drain``) before producing more. So a pipeline of ``GET``\\ s of a large
value, or one ``MGET`` of many, never holds more than about one value per client.

Pushes (Pub/Sub messages) cannot wait for a slow reader: they are appended at once, and a
client whose pending output passes ``max_output`` bytes is disconnected, as Redis does past
its ``client-output-buffer-limit``. A client that leaves replies unread for ``timeout``
seconds is disconnected too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, final

from ._resp import Reply, RespParser, encode_reply

__all__ = ("STREAMED", "Client", "ClientGone")

_log: Final = logging.getLogger("mtaio.cache")
_FLUSH_AT: Final = 1 << 16  # local reply bytes written out at once
#: A bulk string this large is written without being copied into a frame.
STREAMED: Final = 1 << 16
_CRLF: Final = b"\r\n"


@final
class ClientGone(ConnectionError):
    """The connection was closed by the node (a limit, a timeout) or by the client."""


@final
class Client:
    """State of one connection."""

    __slots__ = (
        "accounted",
        "auth_failures",
        "authed",
        "busy",
        "channels",
        "closed",
        "connected_at",
        "dropped",
        "id",
        "max_output",
        "name",
        "out",
        "out_size",
        "parser",
        "partial_since",
        "patterns",
        "quit",
        "timeout",
        "transport",
        "writer",
    )

    def __init__(
        self,
        client_id: int,
        writer: asyncio.StreamWriter,
        parser: RespParser,
        *,
        authed: bool,
        max_output: int,
        timeout: float,
        now: float,
    ) -> None:
        self.id = client_id
        self.writer = writer
        self.transport = writer.transport
        self.parser = parser
        self.authed = authed
        self.auth_failures = 0
        self.name = b""
        self.quit = False
        self.closed = False
        self.dropped = False  # closed by the node for passing a limit
        self.busy = False  # between reading a batch and flushing its replies
        self.out: list[bytes] = []
        self.out_size = 0
        self.max_output = max_output
        self.timeout = timeout
        self.connected_at = now
        self.partial_since: float | None = None
        self.accounted = 0  # request bytes of this client counted in the node's budget
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}

    def __repr__(self) -> str:
        return f"<Client {self.id}>"

    @property
    def subscriptions(self) -> int:
        """Channels plus patterns subscribed to."""
        return len(self.channels) + len(self.patterns)

    def abort(self, why: str) -> None:
        """Drop the connection at once, pending output included (a limit was passed)."""
        if not self.closed:
            self.closed = self.dropped = True
            self.out.clear()
            self.out_size = 0
            _log.info("cache node client %d disconnected: %s", self.id, why)
            self.transport.abort()

    # -- output ----------------------------------------------------------------------------

    def queue(self, frame: bytes) -> None:
        """Append an encoded frame to the replies of the current batch."""
        self.out.append(frame)
        self.out_size += len(frame)

    def push(self, frame: bytes) -> bool:
        """Send a push (a Pub/Sub message) now, or after the batch being answered.

        Past ``max_output`` bytes pending, the client is disconnected.

        Returns:
            Whether the client was still connected to take it.
        """
        if self.closed:
            return False
        if self.busy:
            self.queue(frame)  # keeps it after the replies already produced
        else:
            self.transport.write(frame)
        if self.transport.get_write_buffer_size() + self.out_size > self.max_output:
            self.abort(f"output over {self.max_output} bytes")
        return True

    async def send(self, reply: Reply) -> None:
        """Produce one reply, writing out and waiting for the client as needed."""
        if isinstance(reply, list):
            if _small(reply):
                self.queue(encode_reply(reply))
            else:
                self.queue(b"*%d\r\n" % len(reply))
                for item in reply:
                    await self.send(item)
        elif isinstance(reply, bytes) and len(reply) >= STREAMED:
            self.queue(b"$%d\r\n" % len(reply))
            await self.flush()
            self._write(reply)
            self.queue(_CRLF)
        else:
            self.queue(encode_reply(reply))
        if self.out_size >= _FLUSH_AT:
            await self.flush()

    def _write(self, data: bytes) -> None:
        if self.closed:
            raise ClientGone("connection closed")
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.max_output:
            self.abort(f"output over {self.max_output} bytes")
            raise ClientGone("output over the cap")

    async def flush(self) -> None:
        """Write the queued replies; wait while the client's socket is backed up.

        Raises:
            ClientGone: The client went away, passed its output cap, or read nothing
                for ``timeout`` seconds while replies waited.
        """
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self.out_size = 0
            self._write(data)
        if self.transport.get_write_buffer_size() > _FLUSH_AT:
            try:
                async with asyncio.timeout(self.timeout):
                    await self.writer.drain()
            except TimeoutError:
                self.abort(f"replies unread for {self.timeout:g} s")
                raise ClientGone("replies unread") from None
        if self.closed:
            raise ClientGone("connection closed")


def _small(items: list[Reply]) -> bool:
    size = 0
    for item in items:
        if isinstance(item, bytes):
            size += len(item)
        elif isinstance(item, list):
            return False
    return size < _FLUSH_AT
