"""A CacheNode's Pub/Sub: SUBSCRIBE, PSUBSCRIBE, their UNs, PUBLISH and PUBSUB, as RESP2 pushes.

A message is encoded once per channel (and once per matching pattern) and appended to each
subscriber's output; a subscriber that does not read is disconnected once its pending output
passes the node's per-client cap (see :meth:`Client.push`), so a publisher never waits for
and the node never buffers without bound for a slow subscriber. Patterns are Redis globs
matched by :class:`GlobPattern`, without backtracking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from ._node_glob import GlobPattern, pattern_error
from ._node_keyspace import arity
from ._resp import Reply, RespError, encode_reply

if TYPE_CHECKING:
    from ._node_client import Client

__all__ = ("NO_REPLY", "NoReply", "PubSub")


@final
class NoReply:
    """A handler's result when it already queued its replies (one per channel)."""

    __slots__ = ()


NO_REPLY: Final = NoReply()

_SUB_COMMANDS = frozenset(
    {b"SUBSCRIBE", b"PSUBSCRIBE", b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"PING", b"QUIT", b"RESET"}
)


@final
class PubSub:
    """Who listens to what, and the Pub/Sub commands."""

    __slots__ = ("channels", "patterns")

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Client, None]] = {}
        self.patterns: dict[bytes, tuple[GlobPattern, dict[Client, None]]] = {}

    @staticmethod
    def allowed(name: bytes) -> bool:
        """Whether a client in subscribed mode may run command ``name`` (RESP2)."""
        return name in _SUB_COMMANDS

    def publish_to(self, channel: bytes, message: bytes) -> int:
        receivers = 0
        subscribers = self.channels.get(channel)
        if subscribers:
            frame = encode_reply([b"message", channel, message])
            for client in list(subscribers):
                receivers += client.push(frame)
        for pattern, (glob, clients) in list(self.patterns.items()):
            if clients and glob.match(channel):
                frame = encode_reply([b"pmessage", pattern, channel, message])
                for client in list(clients):
                    receivers += client.push(frame)
        return receivers

    def drop(self, client: Client) -> None:
        """Remove every subscription of ``client`` (it is gone)."""
        for channel in client.channels:
            self._leave_channel(channel, client)
        for pattern in client.patterns:
            self._leave_pattern(pattern, client)
        client.channels.clear()
        client.patterns.clear()

    def _leave_channel(self, channel: bytes, client: Client) -> None:
        members = self.channels.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self.channels[channel]

    def _leave_pattern(self, pattern: bytes, client: Client) -> None:
        entry = self.patterns.get(pattern)
        if entry is not None:
            entry[1].pop(client, None)
            if not entry[1]:
                del self.patterns[pattern]

    @staticmethod
    def _unsubscribe(
        client: Client,
        names: list[bytes],
        kind: bytes,
        mine: dict[bytes, None],
        leave: Callable[[bytes, Client], None],
    ) -> NoReply:
        # Without names: from everything; and one reply even when there was nothing.
        names = names or list(mine)
        if not names:
            client.queue(encode_reply([kind, None, client.subscriptions]))
        for name in names:
            if mine.pop(name, 0) is None:
                leave(name, client)
            client.queue(encode_reply([kind, name, client.subscriptions]))
        return NO_REPLY

    # -- commands ------------------------------------------------------------------------

    async def publish(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 3:
            return arity("publish")
        return self.publish_to(cmd[1], cmd[2])

    async def subscribe(self, client: Client, cmd: list[bytes]) -> Reply | NoReply:
        if len(cmd) < 2:
            return arity("subscribe")
        for channel in cmd[1:]:
            if channel not in client.channels:
                client.channels[channel] = None
                self.channels.setdefault(channel, {})[client] = None
            client.queue(encode_reply([b"subscribe", channel, client.subscriptions]))
        return NO_REPLY

    async def psubscribe(self, client: Client, cmd: list[bytes]) -> Reply | NoReply:
        if len(cmd) < 2:
            return arity("psubscribe")
        for pattern in cmd[1:]:
            error = pattern_error(pattern)
            if error is not None:
                return RespError(error)
        for pattern in cmd[1:]:
            if pattern not in client.patterns:
                client.patterns[pattern] = None
                entry = self.patterns.get(pattern)
                if entry is None:
                    entry = self.patterns[pattern] = (GlobPattern(pattern), {})
                entry[1][client] = None
            client.queue(encode_reply([b"psubscribe", pattern, client.subscriptions]))
        return NO_REPLY

    async def unsubscribe(self, client: Client, cmd: list[bytes]) -> Reply | NoReply:
        return self._unsubscribe(
            client, cmd[1:], b"unsubscribe", client.channels, self._leave_channel
        )

    async def punsubscribe(self, client: Client, cmd: list[bytes]) -> Reply | NoReply:
        return self._unsubscribe(
            client, cmd[1:], b"punsubscribe", client.patterns, self._leave_pattern
        )

    async def pubsub(self, client: Client, cmd: list[bytes]) -> Reply:
        sub = cmd[1].upper() if len(cmd) > 1 else b""
        if sub == b"CHANNELS" and len(cmd) <= 3:
            error = pattern_error(cmd[2]) if len(cmd) == 3 else None
            if error is not None:
                return RespError(error)
            glob = GlobPattern(cmd[2]) if len(cmd) == 3 and cmd[2] != b"*" else None
            return [c for c in self.channels if glob is None or glob.match(c)]
        if sub == b"NUMSUB":
            out: list[Reply] = []
            for channel in cmd[2:]:
                out += [channel, len(self.channels.get(channel, ()))]
            return out
        if sub == b"NUMPAT" and len(cmd) == 2:
            return len(self.patterns)
        return RespError(
            f"ERR unknown subcommand or wrong number of arguments for "
            f"'{sub[:32].decode(errors='replace')}'. Try PUBSUB HELP."
        )
