"""CacheNode: an embedded cache server speaking enough RESP2 for redis-py and ``redis-cli``.

It is the development stand-in for Redis/Valkey behind :class:`~mtaio.cache.DistributedCache`:
same protocol, so the same client code runs against either. Storage is a size-bounded
:class:`~mtaio.cache.TTLCache` of bytes. The node binds to loopback unless told otherwise,
caps every request, answers malformed input with an error and closes only that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, final

from mtaio.exceptions import (
    CacheError,
    ConfigurationError,
    ConfigurationTypeError,
    require_positive_int,
)
from mtaio.typing import Clock

from ._distributed import _is_str, is_address
from ._resp import Reply, RespError, RespParser, RespProtocolError, encode_reply
from ._ttl import TTLCache

__all__ = ("CacheNode", "CacheNodeStats")

_log: Final = logging.getLogger("mtaio.cache")
_OK: Final = "OK"
_SERVER_VERSION: Final = "7.0.0"  # what redis-py and redis-cli see; the subset below fits it
_READ_SIZE: Final = 1 << 16


@final
@dataclass(frozen=True, slots=True)
class CacheNodeStats:
    """A snapshot of a :class:`CacheNode`'s counters, from ``stats()``.

    Attributes:
        keys: Keys held at the time of the snapshot.
        clients: Client connections currently open.
        commands: Commands processed since the node started.
    """

    keys: int
    clients: int
    commands: int


@final
class _Client:
    __slots__ = ("authed", "id", "name", "quit", "scan")

    def __init__(self, client_id: int, authed: bool) -> None:
        self.id = client_id
        self.authed = authed
        self.name = b""
        self.quit = False
        self.scan: list[bytes] = []  # the key snapshot a SCAN cursor walks


def _arity(name: str) -> RespError:
    return RespError(f"ERR wrong number of arguments for '{name}' command")


_SYNTAX: Final = RespError("ERR syntax error")
_NOT_INT: Final = RespError("ERR value is not an integer or out of range")


def _int(raw: bytes) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


@final
class CacheNode:
    """An in-process cache server that Redis clients can talk to.

    Example::

        async with CacheNode("n1", ("127.0.0.1", 5000)) as node:
            ...  # DistributedCache([node.address]) or redis-cli -p 5000

    Args:
        node_id: A name for logs and ``INFO``.
        address: ``(host, port)`` to listen on; port ``0`` picks a free one (read it back
            from :attr:`address` after :meth:`start`). Defaults to loopback.
        password: When set, clients must ``AUTH`` (or ``HELLO ... AUTH``) first.
        max_items: The most keys held; the least recently used go first.
        max_value_bytes: Largest value (and key) accepted, in bytes.
        max_request_bytes: Largest request (all its arguments together), in bytes.
        max_clients: Connections served at once; more are refused.
        clock: Monotonic clock of the storage's expiries (tests inject a fake one).
    """

    __slots__ = (
        "_address",
        "_clients",
        "_commands",
        "_handlers",
        "_max_clients",
        "_max_request",
        "_max_value",
        "_next_client",
        "_password",
        "_run_id",
        "_server",
        "_started_at",
        "_store",
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
        max_clients: int = 10_000,
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
        self._max_clients = require_positive_int("max_clients", max_clients)
        self._store: TTLCache[bytes] = TTLCache(
            default_ttl=None, max_size=require_positive_int("max_items", max_items), clock=clock
        )
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._next_client = 0
        self._commands = 0
        self._run_id = os.urandom(20).hex()
        self._started_at = 0.0
        self._handlers: dict[bytes, Callable[[_Client, list[bytes]], Awaitable[Reply]]] = {
            b"PING": self._ping,
            b"ECHO": self._echo,
            b"AUTH": self._auth,
            b"HELLO": self._hello,
            b"CLIENT": self._client,
            b"SELECT": self._select,
            b"COMMAND": self._command,
            b"GET": self._get,
            b"SET": self._set,
            b"MGET": self._mget,
            b"DEL": self._del,
            b"UNLINK": self._del,
            b"EXISTS": self._exists,
            b"PEXPIRE": self._pexpire,
            b"EXPIRE": self._expire,
            b"PTTL": self._pttl,
            b"TTL": self._ttl,
            b"SCAN": self._scan,
            b"DBSIZE": self._dbsize,
            b"FLUSHDB": self._flushdb,
            b"FLUSHALL": self._flushdb,
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

    async def stop(self) -> None:
        """Stop listening and close every client connection. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Closing the sockets ends each handler at its next read: cancelling the handler
        # tasks instead would make asyncio.streams log every one as an error.
        for writer in self._clients.values():
            writer.transport.abort()
        tasks = list(self._clients)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=1.0)
            for task in late:  # pragma: no cover - a handler stuck outside a read
                task.cancel()
        await server.wait_closed()
        await self._store.close()
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
            keys=len(self._store), clients=len(self._clients), commands=self._commands
        )

    # -- connections ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= self._max_clients:
            writer.write(encode_reply(RespError("ERR max number of clients reached")))
            writer.close()
            return
        self._clients[task] = writer
        self._next_client += 1
        client = _Client(self._next_client, authed=self._password is None)
        parser = RespParser(
            max_bulk=self._max_value, max_array=1 << 20, max_request=self._max_request
        )
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                out: list[bytes] = []
                try:
                    commands = parser.feed(data)
                except RespProtocolError as exc:
                    commands = []
                    error: RespProtocolError | None = exc
                else:
                    error = parser.error
                for command in commands:
                    out.append(encode_reply(await self._execute(client, command)))
                    if client.quit:
                        break
                if error is not None and not client.quit:
                    # Answer what was complete, then the error, then hang up: after a framing
                    # error the stream cannot be resynchronised.
                    out.append(encode_reply(RespError(f"ERR Protocol error: {error}")))
                if out:
                    writer.write(b"".join(out))
                    await writer.drain()
                if client.quit or error is not None:
                    break
        except (ConnectionError, OSError):
            pass  # the client went away
        except asyncio.CancelledError:
            # Only asyncio.run()'s shutdown cancels a handler (stop() closes sockets
            # instead). Ending quietly is right here: on Python 3.11, asyncio.streams logs
            # every cancelled connection handler as an error.
            pass
        finally:
            self._clients.pop(task, None)
            writer.close()
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            await writer.wait_closed()

    async def _execute(self, client: _Client, command: list[bytes]) -> Reply:
        self._commands += 1
        name = command[0].upper()
        handler = self._handlers.get(name)
        if handler is None:
            shown = command[0][:64].decode(errors="replace")
            return RespError(f"ERR unknown command '{shown}'")
        if not client.authed and name not in (b"AUTH", b"HELLO", b"QUIT"):
            return RespError("NOAUTH Authentication required.")
        try:
            return await handler(client, command)
        except Exception:  # a bug must not take the node down for everyone
            _log.exception("cache node %s failed on %r", self.node_id, command[:1])
            return RespError("ERR internal error")

    # -- connection commands -----------------------------------------------------------------

    async def _ping(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) > 2:
            return _arity("ping")
        return cmd[1] if len(cmd) == 2 else "PONG"

    async def _echo(self, client: _Client, cmd: list[bytes]) -> Reply:
        return cmd[1] if len(cmd) == 2 else _arity("echo")

    def _check_password(self, client: _Client, password: bytes) -> RespError | None:
        if self._password is None:
            return RespError(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        if not hmac.compare_digest(password, self._password):
            return RespError("WRONGPASS invalid username-password pair or user is disabled.")
        client.authed = True
        return None

    async def _auth(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) not in (2, 3):
            return _arity("auth")
        if len(cmd) == 3 and cmd[1] != b"default":
            return RespError("WRONGPASS invalid username-password pair or user is disabled.")
        return self._check_password(client, cmd[-1]) or _OK

    async def _hello(self, client: _Client, cmd: list[bytes]) -> Reply:
        args = cmd[1:]
        if args:
            if args[0] != b"2":
                return RespError("NOPROTO sorry, this protocol version is not supported.")
            args = args[1:]
        while args:
            opt = args[0].upper()
            if opt == b"AUTH" and len(args) >= 3:
                if args[1] != b"default":
                    return RespError("WRONGPASS invalid username-password pair")
                error = self._check_password(client, args[2])
                if error is not None:
                    return error
                args = args[3:]
            elif opt == b"SETNAME" and len(args) >= 2:
                client.name = args[1]
                args = args[2:]
            else:
                return _SYNTAX
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

    async def _client(self, client: _Client, cmd: list[bytes]) -> Reply:
        sub = cmd[1].upper() if len(cmd) > 1 else b""
        if sub == b"SETNAME" and len(cmd) == 3:
            client.name = cmd[2]
            return _OK
        if sub == b"GETNAME":
            return client.name or None
        if sub == b"ID":
            return client.id
        if sub in (b"SETINFO", b"NO-EVICT", b"NO-TOUCH", b"REPLY"):
            return _OK
        return RespError("ERR unknown CLIENT subcommand")

    async def _select(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 2:
            return _arity("select")
        return _OK if cmd[1] == b"0" else RespError("ERR DB index is out of range")

    async def _command(self, client: _Client, cmd: list[bytes]) -> Reply:
        return []  # redis-cli asks for command docs at start-up; none is a valid answer

    async def _quit(self, client: _Client, cmd: list[bytes]) -> Reply:
        client.quit = True
        return _OK

    # -- keyspace commands -------------------------------------------------------------------

    async def _get(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 2:
            return _arity("get")
        return await self._store.get(cmd[1])

    async def _set(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 3:
            return _arity("set")
        key, value = cmd[1], cmd[2]
        nx = xx = get = keepttl = False
        ttl: float | None = None
        i = 3
        while i < len(cmd):
            opt = cmd[i].upper()
            if opt == b"NX" and not xx:
                nx = True
            elif opt == b"XX" and not nx:
                xx = True
            elif opt == b"GET":
                get = True
            elif opt == b"KEEPTTL" and ttl is None:
                keepttl = True
            elif opt in (b"EX", b"PX") and ttl is None and not keepttl and i + 1 < len(cmd):
                amount = _int(cmd[i + 1])
                if amount is None:
                    return _NOT_INT
                if amount <= 0:
                    return RespError("ERR invalid expire time in 'set' command")
                ttl = amount if opt == b"EX" else amount / 1000
                i += 1
            else:
                return _SYNTAX
            i += 1
        store = self._store
        old = await store.get(key)
        if (nx and old is not None) or (xx and old is None):
            return old if get else None
        if keepttl and old is not None:
            left = await store.ttl(key)
            ttl = None if left is None or math.isinf(left) else left
        await store.set(key, value, ttl=ttl)
        return old if get else _OK

    async def _mget(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 2:
            return _arity("mget")
        get = self._store.get
        return [await get(k) for k in cmd[1:]]

    async def _del(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 2:
            return _arity(cmd[0].decode(errors="replace").lower())
        return await self._store.delete_many(cmd[1:])

    async def _exists(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) < 2:
            return _arity("exists")
        has = self._store.has
        return sum([await has(k) for k in cmd[1:]])

    async def _expire_in(self, key: bytes, seconds: float) -> Reply:
        if seconds <= 0:
            return int(await self._store.delete(key))
        return int(await self._store.touch(key, ttl=seconds))

    async def _pexpire(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 3:
            return _arity("pexpire")
        ms = _int(cmd[2])
        return _NOT_INT if ms is None else await self._expire_in(cmd[1], ms / 1000)

    async def _expire(self, client: _Client, cmd: list[bytes]) -> Reply:
        if len(cmd) != 3:
            return _arity("expire")
        s = _int(cmd[2])
        return _NOT_INT if s is None else await self._expire_in(cmd[1], s)

    async def _remaining(self, key: bytes, scale: int) -> int:
        left = await self._store.ttl(key)
        if left is None:
            return -2
        if math.isinf(left):
            return -1
        return max(0, math.ceil(left * scale) if scale == 1000 else round(left))

    async def _pttl(self, client: _Client, cmd: list[bytes]) -> Reply:
        return await self._remaining(cmd[1], 1000) if len(cmd) == 2 else _arity("pttl")

    async def _ttl(self, client: _Client, cmd: list[bytes]) -> Reply:
        return await self._remaining(cmd[1], 1) if len(cmd) == 2 else _arity("ttl")

    async def _scan(self, client: _Client, cmd: list[bytes]) -> Reply:
        # The cursor is an offset into a snapshot of the keys taken when a scan starts
        # (cursor 0); a key present for the whole scan is returned exactly once.
        if len(cmd) < 2:
            return _arity("scan")
        cursor = _int(cmd[1])
        if cursor is None or cursor < 0:
            return RespError("ERR invalid cursor")
        count = 10
        match: re.Pattern[bytes] | None = None
        i = 2
        while i < len(cmd):
            opt = cmd[i].upper()
            if i + 1 >= len(cmd):
                return _SYNTAX
            if opt == b"COUNT":
                n = _int(cmd[i + 1])
                if n is None or n < 1:
                    return _SYNTAX
                count = min(n, 100_000)
            elif opt == b"MATCH":
                match = _glob(cmd[i + 1])
            elif opt != b"TYPE":
                return _SYNTAX
            i += 2
        if cursor == 0:
            client.scan = [k for k in self._store if isinstance(k, bytes)]
        snapshot = client.scan
        chunk = snapshot[cursor : cursor + count]
        nxt = cursor + count
        if nxt >= len(snapshot):
            nxt = 0
            client.scan = []
        present = self._store.__contains__
        keys: list[Reply] = [
            k for k in chunk if (match is None or match.fullmatch(k)) and present(k)
        ]
        return [str(nxt).encode(), keys]

    async def _dbsize(self, client: _Client, cmd: list[bytes]) -> Reply:
        return len(self._store)

    async def _flushdb(self, client: _Client, cmd: list[bytes]) -> Reply:
        await self._store.clear()
        return _OK

    async def _info(self, client: _Client, cmd: list[bytes]) -> Reply:
        port = self.address[1]
        store = self._store
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
            "",
            "# Stats",
            f"total_commands_processed:{self._commands}",
            "",
            "# Keyspace",
            f"db0:keys={len(store)},expires=0,avg_ttl=0",
            "",
        ]
        return "\r\n".join(lines).encode()


def _glob(pattern: bytes) -> re.Pattern[bytes]:
    r"""Translate a Redis glob (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) to a regex."""
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        i += 1
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"\\" and i < n:
            out += re.escape(pattern[i : i + 1])
            i += 1
        elif c == b"[":
            end = pattern.find(b"]", i + 1 if pattern[i : i + 1] in (b"^", b"!") else i)
            if end < 0:
                out += re.escape(c)
                continue
            body = pattern[i:end]
            i = end + 1
            negate = body[:1] in (b"^", b"!")
            if negate:
                body = body[1:]
            escaped = re.sub(rb"([\\\]\[^])", rb"\\\1", body)
            out += b"[" + (b"^" if negate else b"") + escaped + b"]"
        else:
            out += re.escape(c)
    return re.compile(bytes(out), re.DOTALL)
