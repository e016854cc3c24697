"""LayeredCache: a local TTLCache tier in front of a DistributedCache, kept coherent.

Reads hit the local tier first and read through on a miss; writes and deletes go to the
distributed tier and then invalidate the local tier of every process, over Redis Pub/Sub
on a channel under the cache's namespace.

Why Pub/Sub rather than Redis 6 client tracking (``CLIENT TRACKING ... BCAST``):

* it works on every engine the distributed tier runs on: Redis and Valkey of any version,
  and the embedded :class:`~mtaio.cache.CacheNode`, which speaks SUBSCRIBE/PUBLISH but
  implements no tracking;
* the distributed tier spreads keys over several nodes by consistent hashing; tracking
  would need one redirected tracking connection per node, and a write tracked on a node
  this process never reads from would go unseen. One channel on one agreed node (the
  *bus*, the first node of the cache by default) carries every invalidation;
* a message names what changed for this cache only (keys, tags, a clear), so tags and
  ``clear()`` invalidate the local tiers in one message; tracking only knows keys;
* the cost is one PUBLISH per write, which tracking would not need, and the publisher
  must be a LayeredCache (a plain DistributedCache writer is not seen; give such writers
  short TTLs or route them through a LayeredCache too). When the key's replicas are the
  bus node alone (one node, or a key that lives on the bus), the PUBLISH rides in the same
  round trip as the write: it is queued behind the SET on the same connection, so the
  server delivers it only after the new value is stored. Elsewhere it follows once the
  write quorum answered, as a second round trip.

Coherence rules:

* A process uses its local tier only while its subscription to the bus is confirmed.
  When the connection is lost (closed, killed with ``CLIENT KILL``, or silent for two to
  three heartbeats) it cannot know what it missed: it drops its local tier, serves from the
  distributed tier meanwhile, and reconnects with back-off. So it never serves a local copy
  older than the disconnect.
* A read-through stores its value locally only if no invalidation of that key (and no
  flush) arrived while it read: a value read just before a concurrent write is never
  cached after that write's invalidation went by.
* A process's own writes drop its local copy before and after the remote write (never
  store the new value locally: two concurrent writes could leave the loser there); the
  next read fills it.
* A write whose outcome is unknown (it failed or was cancelled after it was sent) still
  publishes its invalidation; a PUBLISH lost with its connection is sent once more.
* Messages are JSON with a sender id, capped in size; a malformed one flushes the local
  tier (the safe reading) and is counted (``_layered_bus.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar, final, overload

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    require_positive,
)

from ._distributed import DistributedCache
from ._distributed_node import Command, Failure
from ._layered_bus import notice, own_suffix, parse, subscribe
from ._replicas import MISSING as REMOTE_MISSING
from ._replicas import held_value
from ._stats import CacheStats
from ._ttl import TTLCache
from ._wheel import MISSING, unhashable

if TYPE_CHECKING:
    from ._distributed import DistributedCacheStats
    from ._distributed_node import NodeLink

__all__ = ("LayeredCache", "LayeredCacheStats")

T = TypeVar("T")
D = TypeVar("D")

_log: Final = logging.getLogger("mtaio.cache")
_KEYS_PER_MESSAGE: Final = 1000


@final
@dataclass(frozen=True, slots=True)
class LayeredCacheStats:
    """A snapshot of a :class:`LayeredCache`'s counters, from ``stats()``.

    Attributes:
        local_hits: Reads answered by the local tier.
        local_misses: Reads that went to the distributed tier (including those made while
            the local tier was off).
        invalidations_sent: Invalidation messages published (one per write, delete,
            ``*_many`` batch of up to 1000 keys, tag invalidation or clear).
        invalidations_received: Invalidation messages received from other processes.
        local_flushes: Times the whole local tier was dropped (connection lost, a
            malformed message, another process's ``clear()``).
        publish_errors: Invalidations that could not be published (the bus was down);
            other processes' local tiers were off meanwhile, since they lost the bus too.
        malformed: Messages on the channel that were not a valid invalidation.
        connected: Whether the invalidation subscription is live (local tier in use).
        local: The local tier's :class:`CacheStats`.
        remote: The distributed tier's stats.
    """

    local_hits: int
    local_misses: int
    invalidations_sent: int
    invalidations_received: int
    local_flushes: int
    publish_errors: int
    malformed: int
    connected: bool
    local: CacheStats
    remote: DistributedCacheStats


class _Reading:
    """In-flight read-throughs of one key, and how many invalidations of it went by."""

    __slots__ = ("count", "gen")

    def __init__(self) -> None:
        self.count = 0
        self.gen = 0


@final
class LayeredCache(Generic[T]):
    """A local :class:`TTLCache` tier in front of a :class:`DistributedCache`, kept coherent.

    Implements :class:`~mtaio.cache.AsyncCache` (keys are strings, as in the distributed
    tier), so :func:`~mtaio.cache.cached` takes it. Hits in the local tier cost about as
    much as a :class:`TTLCache` hit; every write, delete, tag invalidation and clear drops
    the key from the local tier of every process sharing the distributed tier's namespace
    (see the module notes for the rules and why Pub/Sub).

    Example::

        remote = DistributedCache[str]([("localhost", 6379)], replication_factor=1)
        async with LayeredCache(remote, local_ttl=30.0) as cache:
            await cache.set("user:7", "Ada", tags=("org:3",))
            assert await cache.get("user:7") == "Ada"  # fills the local tier
            await cache.invalidate_tags("org:3")       # gone in every process

    Args:
        remote: The distributed tier. The layered cache owns it: :meth:`close` closes it.
        local_ttl: Seconds a value lives in the local tier at most (also bounded by its
            remaining TTL in the distributed tier); the bound on staleness should every
            message be lost while the connection stays up.
        local_max_size: The most entries of the local tier (LRU).
        bus: The node (``host:port`` as in ``remote.nodes``) whose channel carries the
            invalidations; every process must use the same. ``None``: the first node.
        heartbeat: The subscription's watchdog period, in seconds: a period without
            traffic brings a PING, and no answer within the next period counts as a lost
            connection (so the loss of a silent connection is seen within three periods).
        max_backoff: Longest wait between reconnection attempts, in seconds.

    Raises:
        ConfigurationTypeError: ``remote`` is not a DistributedCache.
        ConfigurationError: A bad ``local_ttl``, ``local_max_size``, ``heartbeat``,
            ``max_backoff`` or unknown ``bus``.
    """

    __slots__ = (
        "__weakref__",
        "_backoff",
        "_bus",
        "_channel",
        "_closed",
        "_connected",
        "_counts",
        "_flushes",
        "_heartbeat",
        "_hits",
        "_lclock",
        "_ldata",
        "_lget",
        "_listener",
        "_lmove",
        "_local",
        "_local_hit",
        "_local_ttl",
        "_max_backoff",
        "_reading",
        "_ready",
        "_remote",
        "_sender",
        "_suffix",
    )

    def __init__(
        self,
        remote: DistributedCache[T],
        *,
        local_ttl: float = 60.0,
        local_max_size: int | None = 10_000,
        bus: str | None = None,
        heartbeat: float = 1.0,
        max_backoff: float = 5.0,
    ) -> None:
        if not isinstance(remote, DistributedCache):
            raise ConfigurationTypeError(f"remote must be a DistributedCache, got {remote!r}")
        require_positive("local_ttl", local_ttl)
        require_positive("heartbeat", heartbeat)
        require_positive("max_backoff", max_backoff)
        if math.isinf(heartbeat):
            raise ConfigurationError("heartbeat must be finite, got inf")
        nodes = remote.nodes
        if bus is None:
            bus = nodes[0]
        elif bus not in nodes:
            raise ConfigurationError(f"bus must be one of the cache's nodes {nodes}, got {bus!r}")
        self._remote = remote
        self._local: TTLCache[T] = TTLCache(
            default_ttl=local_ttl, max_size=local_max_size, cleanup_interval=max(local_ttl, 1.0)
        )
        self._local_hit = self._local._hit  # a synchronous local lookup
        ldata: Any = self._local._data  # an OrderedDict: the local tier is LRU
        self._ldata = ldata
        # Bound once: the local hit in get() then makes no attribute lookup on the dict.
        self._lget: Callable[[str], Any] = ldata.get
        self._lmove: Callable[[str], None] = ldata.move_to_end
        self._lclock = self._local._clock
        self._hits = 0
        self._local_ttl = float(local_ttl)
        self._bus: NodeLink = remote._link(bus)
        self._channel = remote._channel(b"layered")
        self._sender = os.urandom(8).hex()
        self._suffix = own_suffix(self._sender)
        self._heartbeat = float(heartbeat)
        self._max_backoff = float(max_backoff)
        self._connected = False
        self._closed = False
        self._flushes = 0  # bumped by every flush: read-throughs started before do not store
        self._reading: dict[str, _Reading] = {}
        self._listener: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._backoff = 0.05
        self._counts = dict.fromkeys(
            ("misses", "sent", "received", "flushes", "publish_errors", "malformed"), 0
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start listening for invalidations and wait (up to a heartbeat) to be live."""
        await self.connected(self._heartbeat)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the cache (see :meth:`close`)."""
        await self.close()

    async def connected(self, within: float | None = None) -> bool:
        """Start listening if needed; return whether the local tier is live within ``within``.

        Operations start the listener lazily too; this lets a caller wait for it.

        Args:
            within: Seconds to wait for the subscription; ``None``: as long as it takes.
        """
        self._ensure_listener()
        assert self._ready is not None
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), within)
        return self._connected

    async def close(self) -> None:
        """Stop listening, close both tiers and the connections. Idempotent."""
        self._closed = True
        self._set_live(False)
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._local.close()
        await self._remote.close()

    # -- reading ----------------------------------------------------------------------------

    @overload
    async def get(self, key: str) -> T | None: ...
    @overload
    async def get(self, key: str, default: D) -> T | D: ...
    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``: from the local tier, else the distributed one.

        Raises:
            CacheConnectionError: The distributed tier could not be read.
        """
        # The hot path: the local tier's LRU hit, inlined (a call would cost as much). No
        # check of the subscription first: the local tier holds entries only while it is
        # live (losing it flushes the tier, and read-throughs store only while it is live).
        try:
            entry = self._lget(key)
        except TypeError:
            raise unhashable(key) from None
        if entry is not None:
            expires = entry.expires
            if expires is None or expires > self._lclock():
                self._lmove(key)
                self._hits += 1
                return entry.value
        if self._listener is None:
            self._ensure_listener()
        self._counts["misses"] += 1
        value = (await self._read_through([key]))[0]
        return default if value is MISSING else value

    async def get_many(self, keys: Iterable[str]) -> dict[str, T]:
        """Return the values of the ``keys`` found: local tier first, the rest in one batch.

        The keys the local tier misses are read from the distributed tier together (one
        round trip per node) and kept locally under the same rules as :meth:`get`.
        """
        names = list(keys)
        found: dict[str, Any] = {}
        missing: list[str] = []
        hit = self._local_hit  # empty while the subscription is down (see get)
        for key in names:
            value = hit(key)
            if value is MISSING:
                missing.append(key)
            else:
                found[key] = value
        self._hits += len(found)
        if self._listener is None:
            self._ensure_listener()
        if missing:
            self._counts["misses"] += len(missing)
            for key, value in zip(missing, await self._read_through(missing), strict=True):
                if value is not MISSING:
                    found[key] = value
        return {key: found[key] for key in names if key in found}

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]] | Callable[[], T],
        ttl: float | None = None,
        *,
        refresh_ahead: float | None = None,
    ) -> T:
        """Return the value of ``key``, loading it once in the whole fleet on a miss.

        A local hit returns at once; otherwise the distributed tier's
        :meth:`~mtaio.cache.DistributedCache.get_or_set` coalesces the load within this
        process and across processes. A loaded value enters the local tier on its next
        read (its tags are known only then).

        Args:
            key: The key.
            factory: A sync or async callable returning the value.
            ttl: As for :meth:`set`.
            refresh_ahead: As for the distributed tier (the local tier serves its copy
                meanwhile; the reload's write invalidates it everywhere).
        """
        value = self._local_hit(key)  # empty while the subscription is down (see get)
        if value is not MISSING:
            self._hits += 1
            return value  # type: ignore[no-any-return]
        if self._listener is None:
            self._ensure_listener()
        self._counts["misses"] += 1
        if refresh_ahead is None:
            found = (await self._read_through([key]))[0]
            if found is not MISSING:
                return found  # type: ignore[no-any-return]
        loaded: T = await self._remote.get_or_set(key, factory, ttl, refresh_ahead=refresh_ahead)
        # Nothing to publish: no local tier holds a key missing from the distributed one
        # (its delete or expiry reached them), and this one fills on the next read.
        return loaded

    # -- writing ----------------------------------------------------------------------------

    async def set(
        self, key: str, value: T, ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store ``value`` in the distributed tier and invalidate ``key`` everywhere.

        Args:
            key: The key.
            value: The value.
            ttl: Seconds it lives in the distributed tier (the local copy lives at most
                ``local_ttl``); ``None`` uses the distributed tier's default.
            tags: As for :meth:`DistributedCache.set`.
        """
        self._drop_key(key)
        remote = self._remote
        rkey, raw, px = await remote._prepare_set(key, value, ttl, tags)
        await self._write(key, rkey, raw, px, False)
        remote._stats["writes"] += 1

    async def set_many(
        self, items: Mapping[str, T], ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store every item and invalidate their keys everywhere (batched messages)."""
        keys = list(items)
        self._drop_local(keys)
        await self._remote.set_many(items, ttl, tags=tags)
        await self._invalidate_keys(keys)

    async def delete(self, key: str) -> bool:
        """Delete ``key`` from both tiers, in every process; return whether it held a value."""
        self._drop_key(key)
        remote = self._remote
        rkey = remote._key(key)
        replies = await self._write(key, rkey, remote._tombstone(rkey), remote._tombstone_ms, True)
        remote._stats["deletes"] += 1
        return held_value(replies)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` from both tiers in every process; return how many held a value."""
        names = list(keys)
        self._drop_local(names)
        count = await self._remote.delete_many(names)
        await self._invalidate_keys(names)
        return count

    async def invalidate_tags(self, *tags: str) -> None:
        """Make every value written with any of ``tags`` a miss in both tiers, everywhere.

        One write per tag in the distributed tier (versioned tags) and one message to
        every local tier, whatever the number of members.
        """
        await self._remote.invalidate_tags(*tags)
        await self._local.invalidate_tags(*tags)
        self._flushes += 1  # read-throughs in flight may hold a member: do not store them
        await self._publish({"t": list(tags)})

    async def clear(self) -> None:
        """Remove every key of the namespace from the distributed tier and every local tier."""
        self._flush_local()
        await self._remote.clear()
        self._flush_local()
        await self._publish({"c": 1})

    # -- introspection --------------------------------------------------------------------

    @property
    def local(self) -> TTLCache[T]:
        """The local tier (read it; write through the layered cache)."""
        return self._local

    @property
    def remote(self) -> DistributedCache[T]:
        """The distributed tier."""
        return self._remote

    @property
    def channel(self) -> bytes:
        """The Pub/Sub channel of the invalidations (under the cache's namespace)."""
        return self._channel

    def stats(self) -> LayeredCacheStats:
        """A snapshot of the counters (see :class:`LayeredCacheStats`)."""
        c = self._counts
        return LayeredCacheStats(
            local_hits=self._hits,
            local_misses=c["misses"],
            invalidations_sent=c["sent"],
            invalidations_received=c["received"],
            local_flushes=c["flushes"],
            publish_errors=c["publish_errors"],
            malformed=c["malformed"],
            connected=self._connected,
            local=self._local.stats(),
            remote=self._remote.stats(),
        )

    def __repr__(self) -> str:
        return (
            f"<LayeredCache local_ttl={self._local_ttl} bus={self._bus.name} "
            f"connected={self._connected} local_items={len(self._local._data)}>"
        )

    # -- internals --------------------------------------------------------------------------

    async def _read_through(self, keys: list[str]) -> list[Any]:
        """Read ``keys`` from the distributed tier (one batch); keep what nothing raced.

        Each value is kept locally only if no invalidation of its key, and no flush or tag
        invalidation, arrived while it was read, and only while the subscription is live.
        """
        reading = self._reading
        marks: list[tuple[_Reading, int]] = []
        for key in keys:
            r = reading.get(key)
            if r is None:
                r = reading[key] = _Reading()
            r.count += 1
            marks.append((r, r.gen))
        flushes = self._flushes
        try:
            found = await self._remote._read_entries(keys)
        finally:
            for key, (r, _) in zip(keys, marks, strict=True):
                r.count -= 1
                if not r.count:
                    del reading[key]
        values: list[Any] = []
        keep = self._connected and self._flushes == flushes
        now = time.time()
        local_ttl = self._local_ttl
        for key, (env, value), (r, gen) in zip(keys, found, marks, strict=True):
            if value is REMOTE_MISSING or env is None:
                values.append(MISSING)
                continue
            values.append(value)
            if not keep or r.gen != gen:
                continue
            ttl = local_ttl
            if env.expires_at:
                ttl = min(ttl, env.expires_at / 1000.0 - now)
                if ttl <= 0:
                    continue
            await self._local.set(key, value, ttl, tags=[name for name, _ in env.tags])
        return values

    def _drop_key(self, key: str) -> None:
        """Drop ``key`` from the local tier; a read-through of it in flight will not store."""
        self._local._delete(key, [])
        r = self._reading.get(key)
        if r is not None:
            r.gen += 1

    def _drop_local(self, keys: Iterable[str]) -> None:
        local = self._local
        reading = self._reading
        for key in keys:
            local._delete(key, [])
            r = reading.get(key)
            if r is not None:
                r.gen += 1

    def _flush_local(self) -> None:
        self._flushes += 1
        self._counts["flushes"] += 1
        self._local._clear([])

    async def _invalidate_keys(self, keys: list[str]) -> None:
        self._drop_local(keys)
        for i in range(0, len(keys), _KEYS_PER_MESSAGE):
            await self._publish({"k": keys[i : i + _KEYS_PER_MESSAGE]})

    async def _write(self, key: str, rkey: bytes, raw: bytes, px: int, get: bool) -> list[Any]:
        """Write ``raw`` under ``rkey`` and invalidate ``key`` in every process.

        The PUBLISH goes in the write's own round trip when the bus is the key's only live
        replica, else once the write quorum answered. A write that fails or is cancelled
        after it was sent may still have reached a replica: its invalidation is sent anyway,
        without waiting for it (the caller gets the write's error at once).
        """
        remote = self._remote
        bus = self._bus
        command = notice(self._channel, self._sender, {"k": [key]})
        futs, sent = remote._submit_write_then(rkey, raw, px, get, bus, command)
        try:
            replies = await remote._wait_write(rkey, futs)
        except BaseException:
            self._drop_key(key)
            if sent is None:
                sent = bus.submit(command)
            sent.add_done_callback(partial(self._published_soon, command, True))
            raise
        self._drop_key(key)
        if sent is None:
            sent = bus.submit(command)
        await self._published(command, sent)
        return replies

    async def _publish(self, body: dict[str, Any]) -> None:
        command = notice(self._channel, self._sender, body)
        await self._published(command, self._bus.submit(command))

    async def _published(self, command: Command, sent: asyncio.Future[Any]) -> None:
        """Wait for a PUBLISH; send it once more if its connection was lost; count it."""
        reply = await sent
        if reply.__class__ is Failure and reply.transport:
            # The connection dropped before the reply: the PUBLISH may never have run.
            reply = await self._bus.submit(command)
        self._count_publish(reply)

    def _published_soon(self, command: Command, retry: bool, sent: asyncio.Future[Any]) -> None:
        """:meth:`_published` as a done callback, for a write that raised (nothing awaits)."""
        reply = sent.result()
        if retry and reply.__class__ is Failure and reply.transport and not self._closed:
            self._bus.submit(command).add_done_callback(
                partial(self._published_soon, command, False)
            )
            return
        self._count_publish(reply)

    def _count_publish(self, reply: Any) -> None:
        if reply.__class__ is Failure:
            # The bus is unreachable from here; the other processes most likely lost it too
            # (and dropped their local tiers), else their copy lives at most local_ttl.
            self._counts["publish_errors"] += 1
            _log.warning(
                "layered cache: invalidation not published on %s: %s", self._bus, reply.error
            )
        else:
            self._counts["sent"] += 1

    def _set_live(self, live: bool) -> None:
        if self._connected and not live:
            self._flush_local()
        self._connected = live
        if self._ready is not None:
            if live:
                self._ready.set()
            else:
                self._ready.clear()

    def _on_subscribed(self) -> None:
        self._set_live(True)
        self._backoff = 0.05

    def _ensure_listener(self) -> None:
        if self._closed:
            return
        if self._ready is None:
            self._ready = asyncio.Event()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        while not self._closed:
            try:
                await subscribe(
                    self._bus.pool,
                    self._channel,
                    self._heartbeat,
                    self._remote._timeout,
                    self._on_subscribed,
                    self._on_message,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._connected:
                    _log.warning(
                        "layered cache: lost the invalidation channel on %s (%s); the local "
                        "tier is dropped until it is back",
                        self._bus,
                        exc,
                    )
            finally:
                self._set_live(False)
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self._max_backoff)

    def _on_message(self, data: Any) -> None:
        try:
            message = parse(data, self._sender, self._suffix)
        except ValueError as exc:
            self._counts["malformed"] += 1
            _log.warning("layered cache: malformed invalidation (%s); local tier dropped", exc)
            self._flush_local()
            return
        if message is None:
            return
        kind, names = message
        if kind == "k":
            if len(names) == 1:
                self._drop_key(names[0])
            else:
                self._drop_local(names)
        elif kind == "t":
            self._drop_tags(names)
        else:
            self._flush_local()
        self._counts["received"] += 1

    def _drop_tags(self, tags: list[str]) -> None:
        local = self._local
        keys: list[Hashable] = []
        for tag in tags:
            members = local._tag_keys.get(tag)
            if members:
                keys += members
        for key in keys:
            local._delete(key, [])
        # A read-through in flight may be reading a member: its tags are unknown until it
        # returns, so none of them may store.
        self._flushes += 1
