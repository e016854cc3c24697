"""Where a limiter keeps its state: in the process (the default) or on Redis/Valkey.

The in-process state is the limiters' own fields: no store object, no indirection, so the
local classes pay nothing for the option. :class:`RedisStore` is the shared one: a
``redis.asyncio`` client, a key prefix, and the scripts every shared object runs on it
(loaded once, called by SHA, reloaded after ``NOSCRIPT`` by redis-py's ``register_script``).

A lost connection is never silent: each call is bounded by the store's ``timeout`` (one
timer per store, :mod:`._watchdog`, not one per call), an error
is counted, and the shared object decides, by its failure policy, whether to refuse
(fail closed) or to fall back on a local limiter (fail open). After an error the object
backs off before it tries Redis again (0.05 s doubling up to 2 s), so a dead server is not
hammered; the first call after the back-off that succeeds ends it.

Script calls made while another is on the wire are pipelined: the store sends them
together, in one write on one connection, as soon as the event loop is free, and hands
each caller its own reply (automatic pipelining, as ioredis does). A lone caller pays
nothing for it (its call goes straight out); fifty tasks deciding at once share a few
round trips instead of queueing for fifty connections. Each script is still atomic on
the server; only the round trips are shared.

A lone call goes out on a connection the store keeps for itself (made by the client's
pool, so it has the URL's database, credentials and TLS): the command is packed, written
and its reply read, without the pool's checkout and release or redis-py's retry layer,
which cost a fifth of a local round trip. At most one lone call is on the wire at a time
(every other waits for the next pipeline), so the connection never carries two requests.
A connection error or a cancellation mid-call drops it; the next call connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, final

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    ResourceLimitError,
    require_choice,
    require_positive,
    require_positive_int,
)
from mtaio.typing import connect_redis, redis_key

from ._watchdog import Watchdog

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

__all__ = ("FailurePolicy", "RedisStore", "StoreUnavailable", "SharedState", "check_name")

_Call = tuple[str, str, Sequence[str], Sequence[Any], "asyncio.Future[Any]"]

logger = logging.getLogger("mtaio.resources")

FailurePolicy = Literal["fail_closed", "fail_open"]

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0


class StoreUnavailable(Exception):
    """The store could not answer (internal: turned into the object's failure policy)."""


@final
class RedisStore:
    """Shared state on Redis or Valkey, for every limiter and breaker given ``store=``.

    Example::

        store = RedisStore("redis://localhost:6379/0", prefix="myapp")
        limiter = RateLimiter(200, burst=20, store=store, name="payments")

    Every object on the store names its state with ``name=``; its keys are
    ``{prefix:name}:...`` (one hash tag per object, so its scripts run on Redis Cluster,
    and different objects spread over the slots).

    Args:
        url_or_client: A ``redis://``, ``rediss://`` or ``unix://`` URL (the store then owns
            the client and closes it in :meth:`close`), or an existing ``redis.asyncio``
            client (``Redis``, ``RedisCluster``, a Sentinel ``master_for``), which the
            caller keeps owning.
        prefix: The first part of every key.
        timeout: Seconds one call to Redis may take (connecting included); past it the
            call is cut off (within an eighth more) and counts as a store error.
        **options: Passed to ``Redis.from_url`` for a URL.

    Raises:
        DependencyError: If redis-py is missing (``pip install "mtaio-resources[redis]"``).
        ConfigurationError: On a URL of another scheme, an empty ``prefix``, a
            non-positive ``timeout``.

    .. versionadded:: 0.2
    """

    __slots__ = (
        "_busy",
        "_client",
        "_conn",
        "_errors",
        "_lost",
        "_noscript",
        "_owns",
        "_pipelines",
        "_queue",
        "_sender",
        "_shas",
        "_watch",
        "errors",
        "pipelined",
        "prefix",
        "round_trips",
        "timeout",
    )

    def __init__(
        self,
        url_or_client: str | Redis | RedisCluster,
        *,
        prefix: str = "mtaio",
        timeout: float = 1.0,
        **options: Any,
    ) -> None:
        given: object = prefix  # checked at run time, whatever the annotation says
        if not isinstance(given, str) or not given or "{" in given or "}" in given:
            raise ConfigurationTypeError(
                f"prefix must be a non-empty string without braces, got {prefix!r}"
            )
        self.timeout = float(require_positive("timeout", timeout))
        if math.isinf(self.timeout):
            raise ConfigurationError("timeout must be finite, got inf")
        # No socket_timeout by default: each call is bounded by `timeout` as a whole (one
        # timer per call), where redis-py's socket timeouts would add a wait_for to every
        # send and read, a fifth of the cost of a local round trip.
        self._client = connect_redis(
            url_or_client, extra="mtaio-resources[redis]", argument="url_or_client", **options
        )
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import NoScriptError, RedisError

        self._noscript = NoScriptError
        self._lost = (RedisConnectionError, OSError)
        self._errors = (RedisError, OSError, TimeoutError)
        self._owns = isinstance(url_or_client, str)
        self.prefix = prefix
        self._shas: dict[str, str] = {}
        self._watch = Watchdog(self.timeout)
        # Script calls on the wire (a direct one, or the sender's batch), the calls waiting
        # for the next batch, and the task sending them. A cluster client sends each call
        # on its own: its pipelines split by node, and a script's keys all hash to one.
        from redis.asyncio import Redis as _Redis

        self._pipelines = isinstance(self._client, _Redis)
        self._conn: Any = None  # the lone calls' own connection, made at the first
        self._busy = 0
        self._queue: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None
        #: Calls made to Redis (answered or not).
        self.round_trips = 0
        #: Calls that failed (connection lost, timeout, error reply).
        self.errors = 0
        #: Script calls sent in a pipeline with others (a part of ``round_trips``).
        self.pipelined = 0

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, round_trips={self.round_trips})"

    @property
    def client(self) -> Redis | RedisCluster:
        """The ``redis.asyncio`` client."""
        return self._client

    def key(self, name: str, *parts: str) -> str:
        """The key of one part of the state of the object called ``name``."""
        return redis_key(self.prefix, name, *parts)

    def _sha(self, source: str) -> str:
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        return sha

    async def run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script by SHA (EVALSHA), loading it once after ``NOSCRIPT``, within ``timeout``.

        This is what redis-py's ``register_script`` does, one layer less deep: the call sits
        on every grant's path. While another script call is on the wire, this one joins the
        next pipeline (see the module's notes).

        Raises:
            StoreUnavailable: If Redis did not answer in time or answered with an error.
        """
        sha = self._shas.get(source) or self._sha(source)
        self.round_trips += 1
        if self._busy and self._pipelines:
            return await self._join(source, sha, keys, args)
        watch = self._watch
        task = watch.enter()
        self._busy += 1
        try:
            return await self._call(source, sha, keys, args)
        except asyncio.CancelledError:
            if not watch.timed_out(task):
                raise
            self.errors += 1
            raise self._late() from None
        except self._errors as error:
            self.errors += 1
            raise StoreUnavailable(f"redis: {error!r}") from error
        finally:
            self._busy -= 1
            watch.leave(task)

    async def _call(self, source: str, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One EVALSHA, on the store's own connection or through a cluster client.

        After ``NOSCRIPT`` (a restarted server, a SCRIPT FLUSH, another node of a cluster)
        the script is loaded and called again.
        """
        if not self._pipelines:
            execute = self._client.execute_command
            try:
                return await execute("EVALSHA", sha, len(keys), *keys, *args)
            except self._noscript:
                await self._client.script_load(source)
                return await execute("EVALSHA", sha, len(keys), *keys, *args)
        conn = self._conn
        if conn is None:
            pool: Any = cast("Redis", self._client).connection_pool  # a plain Redis client
            conn = self._conn = pool.make_connection()  # untyped in redis-py
        command = conn.pack_command("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return await self._ask(conn, command)
        except self._noscript:
            await self._ask(conn, conn.pack_command("SCRIPT", "LOAD", source))
            return await self._ask(conn, command)

    async def _ask(self, conn: Any, command: Any) -> Any:
        """One request and its reply on ``conn`` (connecting it if it is not)."""
        stale = conn.is_connected  # connected before this call: it may have gone stale
        try:
            await conn.send_packed_command(command, check_health=False)
            return await conn.read_response()
        except self._lost:
            # A connection gone stale (a restarted server, an idle timeout) fails at its
            # first use: once more on a new one, as redis-py's own retry would; never
            # after a fresh connection failed, nor once the store is closed.
            if not stale or self._conn is not conn:
                raise
            await conn.send_packed_command(command, check_health=False)
            return await conn.read_response()

    def _late(self) -> StoreUnavailable:
        late = TimeoutError(f"no answer within the store's timeout ({self.timeout} s)")
        error = StoreUnavailable(f"redis: {late!r}")
        error.__cause__ = late
        return error

    async def _join(self, source: str, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Queue a script call for the sender's next pipeline and wait for its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((source, sha, keys, args, future))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())
        return await future  # a caller cancelled here is left out of the batch, or its
        # reply is dropped: what the script did stands, as for a direct call cancelled

    async def _send(self) -> None:
        """Send the queued calls, a pipeline at a time, until none is left."""
        self._busy += 1
        batch: list[_Call] = []
        try:
            while self._queue:
                batch, self._queue = [c for c in self._queue if not c[4].done()], []
                if not batch:
                    continue
                self.pipelined += len(batch)
                task = self._watch.enter()
                try:
                    replies = await self._pipeline(batch)
                except (asyncio.CancelledError, *self._errors) as error:
                    if isinstance(error, asyncio.CancelledError):
                        if not self._watch.timed_out(task):
                            raise
                        failure = self._late()
                    else:
                        failure = StoreUnavailable(f"redis: {error!r}")
                        failure.__cause__ = error
                    self.errors += len(batch)
                    for call in batch:
                        if not call[4].done():
                            call[4].set_exception(failure)
                    continue
                finally:
                    self._watch.leave(task)
                for call, reply in zip(batch, replies, strict=True):
                    future = call[4]
                    if future.done():
                        continue
                    if isinstance(reply, Exception):
                        self.errors += 1
                        failure = StoreUnavailable(f"redis: {reply!r}")
                        failure.__cause__ = reply
                        future.set_exception(failure)
                    else:
                        future.set_result(reply)
                batch = []
                # Let the callers just answered run: those deciding again join the next
                # batch, which then leaves whole rather than as a lone call and the rest.
                await asyncio.sleep(0)
        finally:
            self._busy -= 1
            self._sender = None
            left, self._queue = [*batch, *self._queue], []
            for call in left:  # the store closed, or the loop is going away
                if not call[4].done():
                    call[4].set_exception(StoreUnavailable("the store's sender was stopped"))

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        """One pipeline of EVALSHA calls; the NOSCRIPT ones loaded and sent again."""
        pipe = self._client.pipeline(transaction=False)
        for _, sha, keys, args, _ in batch:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, self._noscript)]
        if missing:
            for source in {batch[i][0] for i in missing}:
                await self._client.script_load(source)
            pipe = self._client.pipeline(transaction=False)
            for i in missing:
                _, sha, keys, args, _ = batch[i]
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        return replies

    async def command(self, *args: Any, limit: float | None = None) -> Any:
        """Run one plain command within ``limit`` seconds (the store's timeout by default).

        Raises:
            StoreUnavailable: If Redis did not answer in time or answered with an error.
        """
        self.round_trips += 1
        try:
            async with asyncio.timeout(self.timeout if limit is None else limit):
                return await self._client.execute_command(*args)
        except self._errors as error:
            self.errors += 1
            raise StoreUnavailable(f"redis: {error!r}") from error

    async def close(self) -> None:
        """Stop the sender and close the client if the store made it from a URL (idempotent).

        Calls still waiting for a pipeline fail with the store unavailable.
        """
        sender = self._sender
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        self._watch.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect()
        if self._owns:
            self._owns = False
            await self._client.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def check_store(store: object) -> RedisStore:
    """Check the ``store`` argument of a shared object."""
    if not isinstance(store, RedisStore):
        raise ConfigurationTypeError(f"store must be a RedisStore or None, got {store!r}")
    return store


def check_name(name: object, store: object) -> str | None:
    """Check ``name``: required (a non-empty string without braces) on a shared store."""
    if name is None:
        if store is not None:
            raise ConfigurationError(
                "name is required on a shared store: it identifies the state every process "
                'shares (name="payments")'
            )
        return None
    if not isinstance(name, str) or not name:
        raise ConfigurationTypeError(f"name must be a non-empty string, got {name!r}")
    if "{" in name or "}" in name:
        raise ConfigurationError(f"name must not contain braces (a hash tag), got {name!r}")
    return name


@final
class SharedState:
    """What every shared object keeps: the store, its name, its failure policy, back-off.

    Args:
        store: The store.
        name: The object's name.
        on_store_error: ``"fail_closed"`` or ``"fail_open"``.
        expected_replicas: The processes sharing the object (for the fail-open share).
    """

    __slots__ = (
        "_backoff",
        "_retry_at",
        "expected_replicas",
        "fallbacks",
        "name",
        "policy",
        "store",
        "store_errors",
    )

    def __init__(
        self,
        store: object,
        name: object,
        on_store_error: object,
        expected_replicas: object,
    ) -> None:
        self.store = check_store(store)
        checked = check_name(name, store)
        assert checked is not None
        self.name = checked
        self.policy: FailurePolicy = require_choice(
            "on_store_error", on_store_error, ("fail_closed", "fail_open")
        )
        self.expected_replicas = require_positive_int(
            "expected_replicas",
            expected_replicas,  # type: ignore[arg-type]
        )
        self._backoff = 0.0
        self._retry_at = -math.inf
        self.store_errors = 0
        self.fallbacks = 0

    def reachable(self, now: float) -> bool:
        """Whether to try Redis now (``False`` while backing off after an error)."""
        return now >= self._retry_at

    def succeeded(self) -> None:
        """Note an answer: the back-off ends."""
        if self._backoff:
            logger.info("%r: the store answers again", self.name)
            self._backoff = 0.0
            self._retry_at = -math.inf

    def failed(self, now: float, error: BaseException | None) -> None:
        """Note an error: back off before the next try."""
        self.store_errors += 1
        first = not self._backoff
        self._backoff = _BACKOFF_FIRST if first else min(_BACKOFF_MAX, self._backoff * 2)
        self._retry_at = now + self._backoff
        if first:
            logger.warning("%r: store unavailable (%s); %s", self.name, error, self.policy)

    def refuse(self, what: str, error: BaseException | None) -> ResourceLimitError:
        """The error a fail-closed object raises when the store cannot answer."""
        exc = ResourceLimitError(
            f"{what} {self.name!r}: the store is unavailable, failing closed ({error})"
        )
        exc.__cause__ = error
        return exc
