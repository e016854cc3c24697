"""CacheNode: an embedded cache server speaking enough RESP2 for redis-py and ``redis-cli``.

It is the development stand-in for Redis/Valkey behind :class:`~mtaio.cache.DistributedCache`:
same protocol, so the same client code runs against either. Storage is a size-bounded
:class:`~mtaio.cache.TTLCache` of bytes. The node binds to loopback unless told otherwise,
caps every request, answers malformed input with an error and closes only that connection.

Layout: this module holds the server (lifecycle, connections, limits, dispatch and the
connection commands); ``_node_keyspace`` the keys and their commands, ``_node_scan`` the
table SCAN walks, ``_node_glob`` the glob matcher, ``_node_pubsub`` Pub/Sub and
``_node_client`` a connection's state and output.

Limits, and why each exists (the README's "Limits and security" has the defaults):

* one request: ``max_request_bytes``, its values ``max_value_bytes``; before AUTH a request
  is at most 10 arguments of 16 KiB (as Redis);
* all partial requests together: ``max_buffered_bytes``; past it the clients holding the
  largest partial requests are disconnected, largest first;
* one client's pending output: ``max_output_bytes`` (replies are streamed with backpressure,
  so only Pub/Sub pushes to a slow reader get near it);
* time: a request must arrive whole, and a client must authenticate, within
  ``idle_timeout`` seconds; replies left unread that long also disconnect;
* connections: ``max_clients`` (by default what the descriptor limit allows); when full, a
  new connection displaces the oldest one that has not authenticated;
* passwords: ``max_auth_failures`` wrong ones close the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeAlias, final

from mtaio.exceptions import (
    CacheError,
    ConfigurationError,
    ConfigurationTypeError,
    require_positive,
    require_positive_int,
)
from mtaio.typing import Clock

from ._distributed import _is_str, is_address
from ._node_client import STREAMED, Client
from ._node_keyspace import OK, SYNTAX, Keyspace, arity
from ._node_pubsub import NoReply, PubSub
from ._resp import Reply, RespError, RespParser, RespProtocolError, encode_reply

__all__ = ("CacheNode", "CacheNodeStats", "default_max_clients")

_log: Final = logging.getLogger("mtaio.cache")
_SERVER_VERSION: Final = "7.0.0"  # what redis-py and redis-cli see; the subset below fits it
_READ_SIZE: Final = 1 << 16
_MAX_ARRAY: Final = 1 << 20
# Before AUTH, Redis takes at most 10 arguments of 16 KiB each: a stranger cannot make the
# node buffer much.
_UNAUTH_ARRAY: Final = 10
_UNAUTH_BULK: Final = 16 << 10
_RESERVED_FDS: Final = 32  # descriptors kept for the listener, logs, the application
_Handler: TypeAlias = Callable[[Client, list[bytes]], Awaitable["Reply | NoReply"]]
_WRONGPASS: Final = "WRONGPASS invalid username-password pair or user is disabled."


def default_max_clients() -> int:
    """The ``max_clients`` default: 10,000, or fewer to fit the descriptor limit (as Redis)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 10_000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(1, min(10_000, soft - _RESERVED_FDS))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@final
@dataclass(frozen=True, slots=True)
class CacheNodeStats:
    """A snapshot of a :class:`CacheNode`'s counters, from ``stats()``.

    Attributes:
        keys: Keys held at the time of the snapshot.
        clients: Client connections currently open.
        commands: Commands processed since the node started.
        dropped_clients: Connections the node closed for passing a limit (output, buffered
            requests, time, failed passwords) or displaced when full.
        rejected_clients: Connections refused because ``max_clients`` were connected.
        auth_failures: Wrong passwords received.
        buffered_bytes: Bytes of partial requests held now, over all clients.
        channels: Pub/Sub channels with at least one subscriber.
        patterns: Pub/Sub patterns with at least one subscriber.
    """

    keys: int
    clients: int
    commands: int
    dropped_clients: int = 0
    rejected_clients: int = 0
    auth_failures: int = 0
    buffered_bytes: int = 0
    channels: int = 0
    patterns: int = 0


@final
class CacheNode:
    """An in-process cache server that Redis clients can talk to.

    Example::

        async with CacheNode("n1", ("127.0.0.1", 5000)) as node:
            ...  # DistributedCache([node.address]) or redis-cli -p 5000

    Args:
        node_id: A name for logs and ``INFO``.
        address: ``(host, port)`` to listen on; port ``0`` picks a free one (read it back
            from :attr:`address` after :meth:`start`). Defaults to loopback; binding
            another address without a password logs a warning.
        password: When set, clients must ``AUTH`` (or ``HELLO ... AUTH``) first.
        max_items: The most keys held; the least recently used go first.
        max_value_bytes: Largest value (and key) accepted, in bytes.
        max_request_bytes: Largest request (all its arguments together), in bytes; by
            default four values and 64 KiB.
        max_clients: Connections served at once; more are refused. By default 10,000 or
            what the process's descriptor limit (``RLIMIT_NOFILE``) leaves room for.
        max_buffered_bytes: Bytes of partial requests held over all clients; by default
            twice ``max_request_bytes``.
        max_output_bytes: Pending output per client before it is disconnected; by default
            32 MiB or twice ``max_value_bytes`` and 1 MiB, whichever is larger.
        idle_timeout: Seconds a client may take to send a request it started, to
            authenticate, or to read replies waiting for it.
        max_auth_failures: Wrong passwords after which a connection is closed.
        clock: Monotonic clock of the storage's expiries (tests inject a fake one).

    Raises:
        ConfigurationError: For a limit below 1 or a port outside 0..65535.
        ConfigurationTypeError: For arguments of the wrong type.
    """

    __slots__ = (
        "_address",
        "_auth_failures",
        "_buffered",
        "_clients",
        "_commands",
        "_dropped",
        "_handlers",
        "_idle_timeout",
        "_keyspace",
        "_max_auth_failures",
        "_max_buffered",
        "_max_clients",
        "_max_output",
        "_max_request",
        "_max_value",
        "_next_client",
        "_password",
        "_pubsub",
        "_rejected",
        "_run_id",
        "_server",
        "_started_at",
        "node_id",
    )

    def __init__(
        self,
        node_id: str = "mtaio-node",
        address: tuple[str, int] = ("127.0.0.1", 0),
        *,
        password: str | None = None,
        max_items: int = 1_000_000,
        max_value_bytes: int = 16 << 20,
        max_request_bytes: int | None = None,
        max_clients: int | None = None,
        max_buffered_bytes: int | None = None,
        max_output_bytes: int | None = None,
        idle_timeout: float = 60.0,
        max_auth_failures: int = 3,
        clock: Clock = time.monotonic,
    ) -> None:
        if not _is_str(node_id):
            raise ConfigurationTypeError(f"node_id must be a str, got {type(node_id).__name__}")
        if not is_address(address):
            raise ConfigurationTypeError(f"address must be a (host, port) tuple, got {address!r}")
        if not 0 <= address[1] < 65536:
            raise ConfigurationError(f"port must be in 0..65535, got {address[1]}")
        if password is not None and not _is_str(password):
            raise ConfigurationTypeError("password must be a str or None")
        self.node_id = node_id
        self._address = address
        self._password = password.encode() if password is not None else None
        self._max_value = require_positive_int("max_value_bytes", max_value_bytes)
        self._max_request = require_positive_int(
            "max_request_bytes",
            max_request_bytes if max_request_bytes is not None else 4 * max_value_bytes + 65536,
        )
        self._max_clients = require_positive_int(
            "max_clients", max_clients if max_clients is not None else default_max_clients()
        )
        self._max_buffered = require_positive_int(
            "max_buffered_bytes",
            max_buffered_bytes if max_buffered_bytes is not None else 2 * self._max_request,
        )
        self._max_output = require_positive_int(
            "max_output_bytes",
            max_output_bytes
            if max_output_bytes is not None
            else max(32 << 20, 2 * self._max_value + (1 << 20)),
        )
        self._idle_timeout = float(require_positive("idle_timeout", idle_timeout))
        self._max_auth_failures = require_positive_int("max_auth_failures", max_auth_failures)
        self._keyspace = Keyspace(require_positive_int("max_items", max_items), clock)
        self._pubsub = PubSub()
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[Any], Client] = {}
        self._next_client = 0
        self._commands = 0
        self._buffered = 0
        self._dropped = self._rejected = self._auth_failures = 0
        self._run_id = os.urandom(20).hex()
        self._started_at = 0.0
        keys = self._keyspace
        pubsub = self._pubsub
        self._handlers: dict[bytes, _Handler] = {
            b"PING": self._ping,
            b"ECHO": self._echo,
            b"AUTH": self._auth,
            b"HELLO": self._hello,
            b"CLIENT": self._client,
            b"SELECT": self._select,
            b"COMMAND": self._command,
            b"RESET": self._reset,
            b"GET": keys.get,
            b"SET": keys.set,
            b"MGET": keys.mget,
            b"DEL": keys.delete,
            b"UNLINK": keys.delete,
            b"EXISTS": keys.exists,
            b"EXPIRE": keys.expire,
            b"PEXPIRE": keys.expire,
            b"EXPIREAT": keys.expire,
            b"PEXPIREAT": keys.expire,
            b"PERSIST": keys.persist,
            b"PTTL": keys.pttl,
            b"TTL": keys.ttl,
            b"SCAN": keys.scan,
            b"DBSIZE": keys.dbsize,
            b"FLUSHDB": keys.flushdb,
            b"FLUSHALL": keys.flushdb,
            b"PUBLISH": pubsub.publish,
            b"SUBSCRIBE": pubsub.subscribe,
            b"PSUBSCRIBE": pubsub.psubscribe,
            b"UNSUBSCRIBE": pubsub.unsubscribe,
            b"PUNSUBSCRIBE": pubsub.punsubscribe,
            b"PUBSUB": pubsub.pubsub,
            b"INFO": self._info,
            b"QUIT": self._quit,
        }

    def __repr__(self) -> str:
        state = "serving" if self._server is not None else "stopped"
        return f"<CacheNode {self.node_id} {self.address[0]}:{self.address[1]} {state}>"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the node listens on (the real port once started)."""
        if self._server is not None and self._server.sockets:
            port = self._server.sockets[0].getsockname()[1]
            return (self._address[0], int(port))
        return self._address

    @property
    def serving(self) -> bool:
        """Whether the node is accepting connections."""
        return self._server is not None

    async def start(self) -> None:
        """Listen on :attr:`address`. Idempotent.

        Raises:
            CacheError: The address cannot be bound (in use, not local...).
        """
        if self._server is not None:
            return
        host, port = self._address
        try:
            self._server = await asyncio.start_server(
                self._serve, host, port, reuse_address=True, limit=_READ_SIZE
            )
        except OSError as exc:
            raise CacheError(
                f"cache node {self.node_id} cannot listen on {host}:{port}: {exc}"
            ) from exc
        self._started_at = time.monotonic()
        self._address = (host, self.address[1])  # a restart reuses the port picked for 0
        _log.info("cache node %s listening on %s:%d", self.node_id, *self.address)
        if self._password is None and not _is_loopback(host):
            _log.warning(
                "cache node %s listens on %s without a password: anyone who can reach it "
                "can read, write and flush it (set password=...)",
                self.node_id,
                host,
            )

    async def stop(self) -> None:
        """Stop listening and close every client connection. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Closing the sockets ends each handler at its next read: cancelling the handler
        # tasks instead would make asyncio.streams log every one as an error.
        for client in self._clients.values():
            client.closed = True
            client.transport.abort()
        tasks = list(self._clients)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=1.0)
            for task in late:  # pragma: no cover - a handler stuck outside a read
                task.cancel()
        await server.wait_closed()
        await self._keyspace.store.close()
        _log.info("cache node %s stopped", self.node_id)

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled (then stop)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def stats(self) -> CacheNodeStats:
        """A snapshot of the node's counters (see :class:`CacheNodeStats`)."""
        return CacheNodeStats(
            keys=len(self._keyspace.store),
            clients=len(self._clients),
            commands=self._commands,
            dropped_clients=self._dropped,
            rejected_clients=self._rejected,
            auth_failures=self._auth_failures,
            buffered_bytes=self._buffered,
            channels=len(self._pubsub.channels),
            patterns=len(self._pubsub.patterns),
        )

    # -- connections ----------------------------------------------------------------------

    def _make_room(self) -> bool:
        """Whether a new connection may be served; may displace an unauthenticated one."""
        if len(self._clients) < self._max_clients:
            return True
        for client in self._clients.values():  # oldest first
            if not client.authed and not client.closed:
                self._drop(client, "displaced by a new connection (max_clients reached)")
                return True
        return False

    def _drop(self, client: Client, why: str) -> None:
        client.abort(why)
        self._release(client)

    def _release(self, client: Client) -> None:
        """Forget what ``client`` holds: its budget share, buffers and subscriptions."""
        self._buffered -= client.accounted
        client.accounted = 0
        client.parser.release()
        if client.channels or client.patterns:
            self._pubsub.drop(client)

    def _account(self, client: Client) -> bool:
        """Update the request-byte budget after ``client`` received bytes.

        Returns:
            Whether ``client`` is still connected (it may be the one dropped).
        """
        pending = client.parser.pending
        self._buffered += pending - client.accounted
        client.accounted = pending
        if self._buffered <= self._max_buffered:
            return True
        # Over budget: disconnect the largest partial requests first (maybe this one), as
        # Redis evicts the clients using the most memory.
        for other in sorted(self._clients.values(), key=lambda c: c.accounted, reverse=True):
            if self._buffered <= self._max_buffered or other.accounted == 0:
                break
            self._drop(other, "partial requests over the node's max_buffered_bytes")
        return not client.closed

    def _deadline(self, client: Client) -> float | None:
        deadline = None
        if client.partial_since is not None:
            deadline = client.partial_since + self._idle_timeout
        if not client.authed:
            auth_by = client.connected_at + self._idle_timeout
            deadline = auth_by if deadline is None else min(deadline, auth_by)
        return deadline

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if not self._make_room():
            self._rejected += 1
            writer.write(encode_reply(RespError("ERR max number of clients reached")))
            writer.close()
            return
        self._next_client += 1
        authed = self._password is None
        parser = RespParser(
            max_bulk=self._max_value if authed else _UNAUTH_BULK,
            max_array=_MAX_ARRAY if authed else _UNAUTH_ARRAY,
            max_request=self._max_request,
        )
        loop = asyncio.get_running_loop()
        client = Client(
            self._next_client,
            writer,
            parser,
            authed=authed,
            max_output=self._max_output,
            timeout=self._idle_timeout,
            now=loop.time(),
        )
        self._clients[task] = client
        try:
            await self._session(client, reader, loop)
        except (ConnectionError, OSError):
            pass  # the client went away, or was disconnected (ClientGone)
        except asyncio.CancelledError:
            # Only asyncio.run()'s shutdown cancels a handler (stop() closes sockets
            # instead). Ending quietly is right here: on Python 3.11, asyncio.streams logs
            # every cancelled connection handler as an error.
            pass
        finally:
            self._clients.pop(task, None)
            self._release(client)
            self._dropped += client.dropped
            writer.close()
        # A client that stopped reading must not keep its unsent replies forever.
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(self._idle_timeout):
                await writer.wait_closed()
        writer.transport.abort()

    async def _session(
        self, client: Client, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop
    ) -> None:
        parser = client.parser
        while True:
            deadline = self._deadline(client)
            if deadline is None:
                data = await reader.read(_READ_SIZE)
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    what = "a partial request" if client.authed else "no AUTH"
                    self._drop(client, f"{what} for {self._idle_timeout:g} s")
                    return
            if not data or client.closed:
                return
            error: RespProtocolError | None
            try:
                commands = parser.feed(data)
            except RespProtocolError as exc:
                commands = []
                error = exc
            else:
                error = parser.error
            if not self._account(client):
                return
            # The clock runs from the first byte of a request that is still incomplete: a
            # client trickling one request times out, one streaming many does not.
            if commands or not parser.partial:
                client.partial_since = None
            if parser.partial and client.partial_since is None:
                client.partial_since = loop.time()
            client.busy = True
            try:
                for command in commands:
                    reply = await self._execute(client, command)
                    if isinstance(reply, list) or (
                        isinstance(reply, bytes) and len(reply) >= STREAMED
                    ):
                        await client.send(reply)  # streamed, with backpressure
                    elif not isinstance(reply, NoReply):
                        client.queue(encode_reply(reply))
                        if client.out_size >= STREAMED:
                            await client.flush()
                    if client.quit or client.closed:
                        break
                if error is not None and not client.quit:
                    # Answer what was complete, then the error, then hang up: after a
                    # framing error the stream cannot be resynchronised.
                    client.queue(encode_reply(RespError(f"ERR Protocol error: {error}")))
            finally:
                client.busy = False
            await client.flush()
            if client.quit or error is not None:
                return

    async def _execute(self, client: Client, command: list[bytes]) -> Reply | NoReply:
        self._commands += 1
        name = command[0].upper()
        if not client.authed and name not in (b"AUTH", b"HELLO", b"QUIT"):
            # Before unknown commands too, as Redis: a stranger learns nothing.
            return RespError("NOAUTH Authentication required.")
        handler = self._handlers.get(name)
        if handler is None:
            shown = command[0][:64].decode(errors="replace")
            return RespError(f"ERR unknown command '{shown}'")
        if (client.channels or client.patterns) and not PubSub.allowed(name):
            return RespError(
                f"ERR Can't execute '{name[:64].decode(errors='replace').lower()}': only "
                "(P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
                "context"
            )
        try:
            return await handler(client, command)
        except Exception:  # a bug must not take the node down for everyone
            _log.exception("cache node %s failed on %r", self.node_id, command[:1])
            return RespError("ERR internal error")

    # -- connection commands -----------------------------------------------------------------

    async def _ping(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) > 2:
            return arity("ping")
        if client.channels or client.patterns:  # RESP2 subscribed mode answers with a push
            return [b"pong", cmd[1] if len(cmd) == 2 else b""]
        return cmd[1] if len(cmd) == 2 else "PONG"

    async def _echo(self, client: Client, cmd: list[bytes]) -> Reply:
        return cmd[1] if len(cmd) == 2 else arity("echo")

    def _check_password(self, client: Client, user: bytes, password: bytes) -> RespError | None:
        if self._password is None:
            return RespError(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        # Compare the password even for a wrong user, so timing tells nothing either way.
        good = hmac.compare_digest(password, self._password)
        if not good or user != b"default":
            self._auth_failures += 1
            client.auth_failures += 1
            if client.auth_failures >= self._max_auth_failures:
                client.quit = True  # answer, then close: guessing costs a connection
            return RespError(_WRONGPASS)
        if not client.authed:
            client.authed = True
            client.parser.set_limits(
                max_bulk=self._max_value, max_array=_MAX_ARRAY, max_request=self._max_request
            )
        return None

    async def _auth(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) not in (2, 3):
            return arity("auth")
        user = cmd[1] if len(cmd) == 3 else b"default"
        return self._check_password(client, user, cmd[-1]) or OK

    async def _hello(self, client: Client, cmd: list[bytes]) -> Reply:
        args = cmd[1:]
        if args:
            if args[0] != b"2":
                return RespError("NOPROTO sorry, this protocol version is not supported.")
            args = args[1:]
        while args:
            opt = args[0].upper()
            if opt == b"AUTH" and len(args) >= 3:
                error = self._check_password(client, args[1], args[2])
                if error is not None:
                    return error
                args = args[3:]
            elif opt == b"SETNAME" and len(args) >= 2:
                client.name = args[1]
                args = args[2:]
            else:
                return SYNTAX
        if not client.authed:
            return RespError("NOAUTH HELLO must be called with the client already authenticated")
        return [
            b"server",
            b"redis",
            b"version",
            _SERVER_VERSION.encode(),
            b"proto",
            2,
            b"id",
            client.id,
            b"mode",
            b"standalone",
            b"role",
            b"master",
            b"modules",
            [],
        ]

    async def _client(self, client: Client, cmd: list[bytes]) -> Reply:
        sub = cmd[1].upper() if len(cmd) > 1 else b""
        if sub == b"SETNAME" and len(cmd) == 3:
            client.name = cmd[2]
            return OK
        if sub == b"GETNAME":
            return client.name or None
        if sub == b"ID":
            return client.id
        if sub in (b"SETINFO", b"NO-EVICT", b"NO-TOUCH", b"REPLY"):
            return OK
        return RespError("ERR unknown CLIENT subcommand")

    async def _select(self, client: Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 2:
            return arity("select")
        return OK if cmd[1] == b"0" else RespError("ERR DB index is out of range")

    async def _command(self, client: Client, cmd: list[bytes]) -> Reply:
        return []  # redis-cli asks for command docs at start-up; none is a valid answer

    async def _reset(self, client: Client, cmd: list[bytes]) -> Reply:
        self._pubsub.drop(client)
        client.name = b""
        return "RESET"

    async def _quit(self, client: Client, cmd: list[bytes]) -> Reply:
        client.quit = True
        return OK

    async def _info(self, client: Client, cmd: list[bytes]) -> Reply:
        port = self.address[1]
        store = self._keyspace.store
        lines = [
            "# Server",
            f"redis_version:{_SERVER_VERSION}",
            "mtaio_cache_node:1",
            f"node_id:{self.node_id}",
            f"run_id:{self._run_id}",
            f"tcp_port:{port}",
            f"uptime_in_seconds:{int(time.monotonic() - self._started_at)}",
            "",
            "# Clients",
            f"connected_clients:{len(self._clients)}",
            f"maxclients:{self._max_clients}",
            "",
            "# Stats",
            f"total_commands_processed:{self._commands}",
            f"rejected_connections:{self._rejected}",
            f"pubsub_channels:{len(self._pubsub.channels)}",
            f"pubsub_patterns:{len(self._pubsub.patterns)}",
            "",
            "# Keyspace",
            f"db0:keys={len(store)},expires=0,avg_ttl=0",
            "",
        ]
        return "\r\n".join(lines).encode()
