"""One node as seen by a :class:`~mtaio.cache.DistributedCache`: auto-pipelining and health.

Every command for a node goes through :meth:`NodeLink.submit`, which queues it and returns a
future. The first command queued while no batch is armed starts a batch task; the task runs
on the next loop iteration and takes *everything* queued by then, so all the operations
issued to one node in one loop iteration travel in one write and one round trip (what ioredis
calls auto-pipelining).

One batch per node is in flight at a time, on one connection. That is what keeps a node's
commands in the order they were issued: with two batches on two connections the server may
run the later one first, and a write acknowledged by another replica (``write_quorum=1``)
could then be overwritten by an older one, or missed by the next read. While a batch is in
flight the next one grows, so under load fewer, larger round trips replace the queue of
small ones.

Futures are always resolved with a value, never an exception: a failed command resolves to a
:class:`Failure`. Replica writes beyond the write quorum are not awaited by anyone, and a
future holding an exception nobody retrieves would be logged as an error at collection.

Time bound: a batch that fails (timeout or lost connection) fails every command queued behind
it at once, instead of leaving them to start a batch of their own on the same sick node. So
a command waits at most ``timeout`` for its node, however many were in flight before it (not
up to twice that, as when a queued command first waited out the in-flight batch's timeout).

Readability: a node whose connection failed may have restarted empty, or missed writes while
it was unreachable. From its first failure until the owner has resynchronised it
(:meth:`NodeLink.mark_readable`), the node still takes writes but its read replies are not
trusted: a command submitted with :meth:`NodeLink.submit_read` resolves to a
:class:`Failure` instead of the reply, checked when the reply arrives, so a read queued
before the failure and answered by the restarted node never returns its empty answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from mtaio.exceptions import CacheConnectionError, CacheError
from mtaio.exceptions import TimeoutError as MtaioTimeoutError

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection, ConnectionPool

__all__ = ("CacheTimeoutError", "Command", "Failure", "NodeLink", "NodeStats")

_log: Final = logging.getLogger("mtaio.cache")
MAX_BATCH: Final = 1024  # commands per round trip


@final
@dataclass(frozen=True, slots=True)
class NodeStats:
    """A snapshot of one node's counters, in :attr:`DistributedCacheStats.nodes`.

    Attributes:
        up: Whether the node is currently considered healthy.
        readable: Whether its reads are trusted (False from a failure until the node is
            resynchronised: it may have restarted empty).
        ops: Commands sent to the node.
        round_trips: Batches sent (``ops / round_trips`` is the pipelining factor).
        errors: Batches that failed with a connection or protocol error.
        timeouts: Batches that timed out.
        times_marked_down: How many times the node was marked down.
        latency_avg_ms: Mean round-trip latency, in milliseconds (0.0 before the first).
        latency_max_ms: Largest round-trip latency, in milliseconds.
        queued: Commands waiting for the next batch.
        in_flight: Commands in the batch currently on the wire.
    """

    up: bool
    readable: bool
    ops: int
    round_trips: int
    errors: int
    timeouts: int
    times_marked_down: int
    latency_avg_ms: float
    latency_max_ms: float
    queued: int
    in_flight: int


@final
class CacheTimeoutError(CacheConnectionError, MtaioTimeoutError):
    """A cache node did not answer within the configured timeout.

    Both a :class:`~mtaio.exceptions.CacheConnectionError` (so one ``except`` covers every
    unreachable-node case) and a :class:`TimeoutError`.
    """


@final
class Failure:
    """The result of a command that failed.

    Holds the error it would raise, and whether the node's connection was at fault
    (``False`` for an error reply, which proves the node is alive).
    """

    __slots__ = ("error", "transport")

    def __init__(self, error: CacheError, transport: bool) -> None:
        self.error = error
        self.transport = transport

    def __repr__(self) -> str:
        return f"<Failure {self.error}>"


Command = tuple[Any, ...]
# A queued command: the command, its future, and whether it is a read (see submit_read).
_Queued = tuple[Command, "asyncio.Future[Any]", bool]


@final
class NodeLink:
    """The client side of one node: its pool, its batch queue, its health and its statistics.

    Args:
        name: Stable identity on the hash ring (``"host:port"``).
        pool: The redis-py connection pool that makes (configured) connections.
        timeout: Seconds one batch (connect, send, every reply) may take.
        failure_threshold: Consecutive failed batches that mark the node down.
        on_down: Called once when the node is marked down.
        on_recovered: Called when a batch succeeds after failures (a reconnect).
        track: Registers a task with the owner so ``close()`` can cancel it.
        on_unreadable: Called when a failure makes the node unreadable (``gate_reads``), so
            the owner can make sure it is probed even if nothing else is sent to it.
        gate_reads: Whether a failure makes the node unreadable until :meth:`mark_readable`
            (an owner that resynchronises recovering nodes); otherwise it stays readable.
            Such an owner has other replicas to read from, so a batch still unanswered at
            half the timeout also releases its reads (and those queued behind it) with a
            :class:`Failure`: the caller falls over while there is time left to.
    """

    __slots__ = (
        "_armed",
        "_batch",
        "_conns",
        "_failures",
        "_gate_reads",
        "_inflight",
        "_loop",
        "_on_down",
        "_on_recovered",
        "_on_unreadable",
        "_pending",
        "_pool",
        "_threshold",
        "_timeout",
        "_track",
        "batches",
        "commands",
        "down_count",
        "errors",
        "latency_max",
        "latency_total",
        "name",
        "readable",
        "timeouts",
        "up",
    )

    def __init__(
        self,
        name: str,
        pool: ConnectionPool,
        *,
        timeout: float,
        failure_threshold: int,
        on_down: Callable[[NodeLink], None],
        on_recovered: Callable[[NodeLink], None],
        track: Callable[[asyncio.Task[Any]], None],
        on_unreadable: Callable[[NodeLink], None] | None = None,
        gate_reads: bool = False,
    ) -> None:
        self.name = name
        self._pool = pool
        self._timeout = timeout
        self._threshold = failure_threshold
        self._on_down = on_down
        self._on_recovered = on_recovered
        self._track = track
        self._gate_reads = gate_reads
        self._on_unreadable = on_unreadable
        self._pending: list[_Queued] = []
        self._batch: list[_Queued] = []
        self._conns: list[AbstractConnection] = []
        self._armed = False
        self._inflight = 0
        self._failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.up = True
        self.readable = True
        self.commands = 0
        self.batches = 0
        self.errors = 0
        self.timeouts = 0
        self.down_count = 0
        self.latency_total = 0.0
        self.latency_max = 0.0

    def __repr__(self) -> str:
        return f"<NodeLink {self.name} {'up' if self.up else 'down'}>"

    def submit(self, command: Command) -> asyncio.Future[Any]:
        """Queue ``command``; the future resolves to its reply or to a :class:`Failure`."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        fut = loop.create_future()
        self._pending.append((command, fut, False))
        if not self._armed and not self._inflight:
            self._arm(loop)
        return fut

    def submit_read(self, command: Command) -> asyncio.Future[Any]:
        """Queue a read whose reply counts only if the node is still readable when it comes.

        The future resolves to the reply, or to a :class:`Failure` (not a transport one)
        when the node failed after the read was queued and is not resynchronised yet.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        fut = loop.create_future()
        self._pending.append((command, fut, True))
        if not self._armed and not self._inflight:
            self._arm(loop)
        return fut

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        # Connections and queued futures belong to one loop. A cache used again from a new
        # loop (a second asyncio.run) forgets the old loop's connections: their transports
        # died with it, and awaiting anything of theirs here would fail.
        if self._loop is not None:
            self._conns = []
            self._pending = []
            self._armed = False
            self._inflight = 0
        self._loop = loop

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._armed = True
        self._inflight += 1
        self._track(loop.create_task(self._run_batch()))

    async def _run_batch(self) -> None:
        # Taking the queue here, one iteration after arming, is what batches every command
        # submitted in the meantime.
        self._armed = False
        batch = self._pending
        if len(batch) <= MAX_BATCH:
            self._pending = []
        else:
            # A huge queue (set_many of 100k keys) leaves in slices, so that each round
            # trip stays well inside the timeout.
            batch, self._pending = batch[:MAX_BATCH], batch[MAX_BATCH:]
        conn = self._conns.pop() if self._conns else self._pool.make_connection()  # type: ignore[no-untyped-call]
        done = 0
        start = time.perf_counter()
        slow = None
        if self._gate_reads:
            self._batch = batch
            assert self._loop is not None
            slow = self._loop.call_later(self._timeout / 2, self._release_reads)
        try:
            async with asyncio.timeout(self._timeout):
                if not conn.is_connected:
                    await conn.connect()
                await conn.send_packed_command(
                    conn.pack_commands([c for c, _, _ in batch]), check_health=False
                )
                for _, fut, read in batch:
                    try:
                        reply = await conn.read_response()
                    except _response_error() as exc:
                        reply = Failure(CacheError(f"{self.name} replied: {exc}"), transport=False)
                    done += 1
                    if read and not self.readable:
                        reply = self._unreadable()
                    if not fut.done():
                        fut.set_result(reply)
        except asyncio.CancelledError:
            self._fail(batch, done, CacheConnectionError(f"cache node {self.name}: closed"))
            await _drop(conn)
            raise
        except TimeoutError:
            self.timeouts += 1
            await self._failed(
                batch,
                done,
                conn,
                CacheTimeoutError(
                    f"cache node {self.name} did not answer within {self._timeout} s",
                    timeout=self._timeout,
                ),
            )
        except (OSError, _redis_error()) as exc:
            await self._failed(
                batch, done, conn, CacheConnectionError(f"cache node {self.name}: {exc}")
            )
        else:
            self._conns.append(conn)
            elapsed = time.perf_counter() - start
            self.batches += 1
            self.commands += len(batch)
            self.latency_total += elapsed
            if elapsed > self.latency_max:
                self.latency_max = elapsed
            if self._failures:
                # A success after failures: the node may have restarted empty.
                self._failures = 0
                if self.up:
                    self._on_recovered(self)
        finally:
            if slow is not None:
                slow.cancel()
                self._batch = []
            self._inflight -= 1
            if self._pending and not self._armed and self._loop is not None:
                self._arm(self._loop)

    def _release_reads(self) -> None:
        """Half the timeout passed without the batch's answer: let its reads fall over."""
        failure = Failure(
            CacheTimeoutError(
                f"cache node {self.name} did not answer a read within {self._timeout / 2} s",
                timeout=self._timeout / 2,
            ),
            transport=False,
        )
        for queue in (self._batch, self._pending):
            for _, fut, read in queue:
                if read and not fut.done():
                    fut.set_result(failure)

    def _unreadable(self) -> Failure:
        return Failure(
            CacheConnectionError(f"cache node {self.name} is resynchronising after a failure"),
            transport=False,
        )

    async def _failed(
        self,
        batch: list[_Queued],
        done: int,
        conn: AbstractConnection,
        error: CacheConnectionError,
    ) -> None:
        if self._gate_reads:
            self.readable = False
            if self._on_unreadable is not None:
                self._on_unreadable(self)
        self._fail(batch, done, error)
        # What queued up behind the failed batch has waited for this node long enough: fail
        # it now (its callers fall over to another replica) rather than give it a timeout
        # of its own on the same sick node.
        pending, self._pending = self._pending, []
        self._fail(pending, 0, error)
        # The connection may hold half a reply: close it; it reconnects on its next batch.
        await _drop(conn)
        self._conns.append(conn)
        self.errors += 1
        self._failures += 1
        _log.debug("%s", error)
        if self.up and self._failures >= self._threshold:
            self.up = False
            self.down_count += 1
            _log.warning("cache node %s marked down after %d failures", self.name, self._failures)
            self._on_down(self)

    @staticmethod
    def _fail(batch: list[_Queued], done: int, error: CacheError) -> None:
        failure = Failure(error, transport=True)
        for _, fut, _ in batch[done:]:
            if not fut.done():
                fut.set_result(failure)

    @property
    def pool(self) -> ConnectionPool:
        """The redis-py pool this node's connections come from (Pub/Sub uses it too)."""
        return self._pool

    def mark_up(self) -> None:
        """Re-admit the node after a successful probe (for writes; reads wait for a resync)."""
        self._failures = 0
        self.up = True

    def mark_readable(self, since_errors: int) -> bool:
        """Trust the node's reads again, unless it failed again since ``errors`` was read.

        Args:
            since_errors: The node's ``errors`` count when its resynchronisation started.

        Returns:
            Whether the node is readable now.
        """
        if self.up and self.errors == since_errors:
            self.readable = True
        return self.readable

    def fail_pending(self, error: CacheError) -> None:
        """Resolve every queued command with ``error`` (used by ``close()``)."""
        self._fail(self._pending, 0, error)
        self._pending = []

    async def disconnect(self) -> None:
        """Close every connection of the node."""
        conns, self._conns = self._conns, []
        for conn in conns:
            await _drop(conn)
        self._loop = None

    def stats(self) -> NodeStats:
        """Counters of this node (see :meth:`DistributedCache.stats`)."""
        return NodeStats(
            up=self.up,
            readable=self.readable,
            ops=self.commands,
            round_trips=self.batches,
            errors=self.errors,
            timeouts=self.timeouts,
            times_marked_down=self.down_count,
            latency_avg_ms=(self.latency_total / self.batches * 1000) if self.batches else 0.0,
            latency_max_ms=self.latency_max * 1000,
            queued=len(self._pending),
            in_flight=self._inflight,
        )


async def _drop(conn: AbstractConnection) -> None:
    try:
        await conn.disconnect(nowait=True)
    except Exception:  # pragma: no cover - best effort on an already broken socket
        _log.debug("error while closing a connection", exc_info=True)


def _response_error() -> type[Exception]:
    from redis.exceptions import ResponseError

    return ResponseError


def _redis_error() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError
