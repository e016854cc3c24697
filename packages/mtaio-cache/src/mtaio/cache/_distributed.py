"""DistributedCache: a replicated cache over Redis-protocol nodes (Redis, Valkey, CacheNode).

Placement: a consistent-hash ring gives each key a preference list of ``replication_factor``
distinct nodes. Writes go to every live replica at once and return after ``write_quorum``
acknowledgements; reads ask ``read_quorum`` replicas (falling over to the next one on failure)
and return the newest version. Every value is stored in an envelope carrying a hybrid logical
clock version and the writer's id, so disagreeing replicas resolve the same way everywhere;
the stale ones are rewritten in the background (read repair), and a node coming back after a
failure is resynchronised from its peers before it serves reads again. Deletes write
tombstones, so a repair can never resurrect a deleted value while the tombstone lives.

Layout: ``_envelope.py`` (the stored format and the clock), ``_replicas.py`` (read and write
paths, untrusted answers, read repair), ``_recovery.py`` (probes and resynchronisation),
``_distributed_node.py`` (one node: batching, time bounds, health); this module holds the
public class.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar, final, overload
from urllib.parse import urlsplit

from mtaio.exceptions import (
    CacheConnectionError,
    CacheError,
    ConfigurationError,
    ConfigurationTypeError,
    require_positive,
    require_positive_int,
)

from ._distributed_node import CacheTimeoutError, NodeLink, NodeStats
from ._envelope import HEADER_SIZE, KIND_TOMBSTONE, KIND_VALUE, Envelope
from ._hashing import HashRing
from ._loading import Loading
from ._replicas import MISSING, check_reply, held_value
from ._serial import JsonSerializer, Serializer
from ._tags import check_tags, tagged_kind

if TYPE_CHECKING:
    from redis.asyncio.connection import ConnectionPool

__all__ = ("CacheDependencyError", "CacheTimeoutError", "DistributedCache", "DistributedCacheStats")

T = TypeVar("T")
D = TypeVar("D")
_log: Final = logging.getLogger("mtaio.cache")
_INSTALL_HINT: Final = "pip install 'mtaio-cache[redis]'"
_MAX_TTL: Final = 1e10  # seconds (~317 years); beyond it, say math.inf


class CacheDependencyError(CacheError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


NodeSpec = tuple[str, int] | str


@final
@dataclass(frozen=True, slots=True)
class DistributedCacheStats:
    """A snapshot of a :class:`DistributedCache`'s counters, from ``stats()``.

    Attributes:
        hits: Reads that found a value.
        misses: Reads that found nothing.
        reads: Keys read (``get`` and each key of ``get_many``).
        writes: Keys written (``set`` and each key of ``set_many``).
        deletes: Keys deleted (``delete`` and each key of ``delete_many``).
        repairs: Stale, missing or corrupt replicas rewritten by read repair.
        resyncs: Completed resynchronisations of a node that came back up.
        corrupt_replicas: Answers refused as corrupt (not an envelope, a payload that does
            not decode or verify, or a clock anomaly); each was skipped for another replica.
        clock_anomalies: Stored versions refused because they were further ahead of this
            process's clock than ``max_clock_drift`` (a badly skewed writer, or a planted
            value); they never move this process's clock. Also logged as warnings.
        loads: Factory calls made by ``get_or_set`` in this process.
        load_errors: Factory calls that raised.
        load_waits: Times ``get_or_set`` waited for another process's load (its lease).
        nodes: Each node's :class:`NodeStats`, keyed by its name (``host:port``).
    """

    hits: int
    misses: int
    reads: int
    writes: int
    deletes: int
    repairs: int
    resyncs: int
    corrupt_replicas: int
    clock_anomalies: int
    loads: int
    load_errors: int
    load_waits: int
    nodes: dict[str, NodeStats]


@final
class DistributedCache(Loading, Generic[T]):
    """A cache replicated over Redis-protocol nodes, with quorums and automatic repair.

    Nodes are Redis or Valkey servers, or :class:`~mtaio.cache.CacheNode` processes for
    development. Construction does no I/O: connections open on first use, so a cache can be
    built in a synchronous ``__init__``. Operations issued concurrently to one node in one
    loop iteration share a single round trip (auto-pipelining). Requires the ``redis``
    extra (``pip install 'mtaio-cache[redis]'``).

    Example::

        async with DistributedCache[str]([("localhost", 6379)], replication_factor=1) as cache:
            await cache.set("greeting", "hello", ttl=60)
            assert await cache.get("greeting") == "hello"

    Args:
        nodes: ``(host, port)`` tuples or ``redis://`` / ``rediss://`` URLs (with password,
            database and TLS as the URL says).
        replication_factor: Replicas of every key, capped at the number of nodes.
        read_quorum: Replicas that must answer a read; the newest version wins.
        write_quorum: Replicas that must acknowledge a write before it returns.
        namespace: Prefix of every key on the nodes (``"<namespace>:<key>"``); ``clear``
            removes only keys under it.
        default_ttl: Seconds a value lives when ``set`` gets no ``ttl``; ``None`` or
            ``math.inf``: forever.
        serializer: Encodes values; :class:`~mtaio.cache.JsonSerializer` by default.
        timeout: Seconds an operation may wait for the nodes, connecting included. A read
            that falls over from a slow or failed replica to another stays within it (a
            slow replica's reads are released at half of it); a write fails when its quorum
            has not acknowledged within it.
        password: Password for ``(host, port)`` nodes (URLs carry their own).
        failure_threshold: Consecutive failed requests that mark a node down; a down node
            is skipped and probed with a ``PING`` after ``down_backoff`` seconds, doubling
            up to ``max_backoff``, until it answers and is re-admitted.
        down_backoff: First probe delay for a down node, in seconds.
        max_backoff: Longest probe delay, in seconds.
        tombstone_ttl: Seconds a deletion marker lives on the nodes.
        vnodes: Points per node on the hash ring.
        read_repair_chance: With ``read_quorum=1``, the fraction of reads that also ask
            the other replicas in the background and repair the stale ones (reads with a
            larger quorum always repair what they see).
        max_clock_drift: Seconds a stored version may be ahead of this process's wall
            clock. The clocks of the processes sharing a cache must agree within it; a
            version further ahead is refused as corrupt (counted in ``clock_anomalies``)
            and never moves this process's clock.
        cross_process: Whether ``get_or_set`` coalesces loads across processes (a lease on
            the key, waiters notified over Pub/Sub) by default; each call can override it.
        lease_time: Seconds a ``get_or_set`` load may hold its key's lease; if its process
            dies, the others wait at most this long before one of them loads. Make it longer
            than your slowest load.

    Raises:
        CacheDependencyError: redis-py is not installed.
        ConfigurationError: An argument is out of range (e.g. a quorum larger than the
            replication factor).
    """

    __slots__ = ("__weakref__", "_default_ttl", "_namespace", "_tombstone_ms")

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        replication_factor: int = 2,
        read_quorum: int = 1,
        write_quorum: int = 1,
        *,
        default_ttl: float | None = None,
        namespace: str = "mtaio",
        serializer: Serializer | None = None,
        timeout: float = 1.0,
        password: str | None = None,
        failure_threshold: int = 3,
        down_backoff: float = 0.5,
        max_backoff: float = 30.0,
        tombstone_ttl: float = 300.0,
        vnodes: int = 160,
        read_repair_chance: float = 0.1,
        max_clock_drift: float = 60.0,
        cross_process: bool = True,
        lease_time: float = 5.0,
    ) -> None:
        try:
            from redis.asyncio.connection import ConnectionPool
        except ImportError as exc:
            raise CacheDependencyError(
                f"DistributedCache needs redis-py: {_INSTALL_HINT}", _INSTALL_HINT
            ) from exc
        if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
            raise ConfigurationTypeError(
                "nodes must be a list of (host, port) tuples or redis:// URLs, "
                f"got {type(nodes).__name__}"
            )
        if not nodes:
            raise ConfigurationError("nodes must list at least one node")
        require_positive_int("replication_factor", replication_factor)
        rf = min(replication_factor, len(nodes))
        require_positive_int("read_quorum", read_quorum)
        require_positive_int("write_quorum", write_quorum)
        for name, value in (("read_quorum", read_quorum), ("write_quorum", write_quorum)):
            if value > rf:
                raise ConfigurationError(
                    f"{name} must be at most the replication factor ({rf}), got {value}"
                )
        if default_ttl is not None:
            require_positive("default_ttl", default_ttl)
            if math.isinf(default_ttl):
                default_ttl = None
            elif default_ttl > _MAX_TTL:
                raise ConfigurationError(
                    f"default_ttl must be at most {_MAX_TTL:.0e} s (math.inf: forever), "
                    f"got {default_ttl!r}"
                )
        if not _is_str(namespace) or not namespace:
            raise ConfigurationError(f"namespace must be a non-empty str, got {namespace!r}")
        if serializer is None:
            serializer = JsonSerializer()
        elif not isinstance(serializer, Serializer):
            raise ConfigurationTypeError(
                "serializer must have dumps(value) -> bytes and loads(bytes) -> value, "
                f"got {type(serializer).__name__}"
            )
        require_positive("timeout", timeout)
        require_positive_int("failure_threshold", failure_threshold)
        require_positive("down_backoff", down_backoff)
        self._tombstone_ms = max(1, int(require_positive("tombstone_ttl", tombstone_ttl) * 1000))
        if not 0.0 <= read_repair_chance <= 1.0:
            raise ConfigurationError(
                f"read_repair_chance must be in [0, 1], got {read_repair_chance!r}"
            )
        require_positive("max_clock_drift", max_clock_drift)
        if not isinstance(cross_process, bool):
            raise ConfigurationTypeError(f"cross_process must be a bool, got {cross_process!r}")
        require_positive("lease_time", lease_time)
        super().__init__(
            cross_process=cross_process,
            lease_time=min(lease_time, _MAX_TTL),
            rf=rf,
            r=read_quorum,
            w=write_quorum,
            prefix=namespace.encode() + b":",
            serializer=serializer,
            timeout=timeout,
            repair_chance=float(read_repair_chance),
            max_drift_ms=int(min(max_clock_drift, _MAX_TTL) * 1000),
            down_backoff=down_backoff,
            max_backoff=max(require_positive("max_backoff", max_backoff), down_backoff),
        )
        self._default_ttl = default_ttl
        self._namespace = namespace
        links = []
        for spec in nodes:
            name, pool = _make_pool(ConnectionPool, spec, timeout, password)
            links.append(
                (
                    name,
                    NodeLink(
                        name,
                        pool,
                        timeout=timeout,
                        failure_threshold=failure_threshold,
                        on_down=self._node_down,
                        on_recovered=self._node_recovered,
                        track=self._track,
                        on_unreadable=self._node_unreadable,
                        gate_reads=rf > 1,
                    ),
                )
            )
        self._ring = HashRing(links, vnodes=vnodes)
        self._by_name = dict(links)

    def __repr__(self) -> str:
        return (
            f"<DistributedCache nodes={list(self._by_name)} rf={self._rf} "
            f"r={self._r} w={self._w} namespace={self._namespace!r}>"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- public API ---------------------------------------------------------------------

    @overload
    async def get(self, key: str) -> T | None: ...
    @overload
    async def get(self, key: str, default: D) -> T | D: ...
    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` when it is missing, expired or deleted.

        A replica whose answer is corrupt (not an envelope this cache wrote, a payload that
        does not decode or verify) is skipped when another replica answers, and repaired.

        Raises:
            CacheConnectionError: Fewer than ``read_quorum`` replicas answered.
            CacheSerializationError: Every replica that answered holds unusable bytes.
        """
        env, value = await self._read(self._key(key))
        if value is not MISSING and env is not None and env.tags:
            value = await self._live_value(env, value)
        stats = self._stats
        stats["reads"] += 1
        if value is MISSING:
            stats["misses"] += 1
            return default
        stats["hits"] += 1
        return value

    async def set(
        self, key: str, value: T, ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` on its replicas.

        Args:
            key: The key.
            value: The value; it must be encodable by the serializer.
            ttl: Seconds to live; ``None`` uses ``default_ttl``; ``math.inf`` never expires.
            tags: Tags of the value: :meth:`invalidate_tags` of any of them makes it a miss
                in every process. A tagged write and read each cost one more round trip
                (to read the tags' version tokens).

        Raises:
            ConfigurationError: ``ttl`` is not a positive number (``True`` is refused too).
            CacheSerializationError: The serializer cannot encode ``value`` (nothing written).
            CacheConnectionError: Fewer than ``write_quorum`` replicas acknowledged.
        """
        rkey, raw, px = await self._prepare_set(key, value, ttl, tags)
        await self._wait_write(rkey, self._submit_write(rkey, raw, px))
        self._stats["writes"] += 1

    async def delete(self, key: str) -> bool:
        """Delete ``key`` (a missing key is not an error); return whether it held a value.

        The replicas keep a small tombstone for ``tombstone_ttl`` seconds so a lagging
        replica cannot bring the old value back. The answer comes from the replicas that
        acknowledged (``SET ... GET``), at least ``write_quorum`` of them.
        """
        rkey = self._key(key)
        raw = self._tombstone(rkey)
        replies = await self._wait_write(
            rkey, self._submit_write(rkey, raw, self._tombstone_ms, get=True)
        )
        self._stats["deletes"] += 1
        return held_value(replies)

    async def has(self, key: str) -> bool:
        """Whether ``key`` holds a live value."""
        env, value = await self._read(self._key(key))
        return await self._live_value(env, value) is not MISSING

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Give ``key`` a fresh time to live; return whether it held a value.

        Args:
            key: The key.
            ttl: The new time to live in seconds; ``None`` uses ``default_ttl`` (and with
                no default the value then never expires); ``math.inf``: never.
        """
        rkey = self._key(key)
        px = self._ttl_ms(ttl)
        env, value = await self._read(rkey)
        value = await self._live_value(env, value)
        if env is None or value is MISSING:
            return False
        # A context-binding serializer signed the old header: sign the value again.
        section = env.header[HEADER_SIZE:]
        raw = self._encode(
            rkey, env.kind, value, px, encoded=None if self._bind else env.payload, tags=section
        )
        await self._wait_write(rkey, self._submit_write(rkey, raw, px))
        return True

    async def get_many(self, keys: Iterable[str]) -> dict[str, T]:
        """Return the values of the ``keys`` that exist, in one round trip per node."""
        names = list(keys)
        found = await self._read_entries(names)
        return {k: v for k, (_, v) in zip(names, found, strict=True) if v is not MISSING}

    async def set_many(
        self, items: Mapping[str, T], ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store every item, batched per node; every value is encoded before anything is sent.

        Args:
            items: Keys and values.
            ttl: As for :meth:`set`.
            tags: Tags of every value, as for :meth:`set` (their tokens are read once).

        Raises:
            CacheSerializationError: A value cannot be encoded (nothing written).
            CacheConnectionError: Some key missed its write quorum (the others are written).
        """
        px = self._ttl_ms(ttl)
        section = await self._tag_section(check_tags(tags)) if tags else b""
        kind = tagged_kind(section)
        prepared = []
        for k, v in items.items():
            rk = self._key(k)
            prepared.append((rk, self._encode(rk, kind, v, px, tags=section), px))
        await self._write_all(prepared)
        self._stats["writes"] += len(prepared)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete every key in ``keys``, batched per node; return how many held a value."""
        px = self._tombstone_ms
        prepared = [(rk, self._tombstone(rk), px) for rk in map(self._key, keys)]
        replies = await self._write_all(prepared, get=True)
        self._stats["deletes"] += len(prepared)
        return sum(held_value(r) for r in replies)

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]] | Callable[[], T],
        ttl: float | None = None,
        *,
        refresh_ahead: float | None = None,
        cross_process: bool | None = None,
    ) -> T:
        """Return the value under ``key``, computing and storing it on a miss.

        Concurrent misses of one key call ``factory`` once in this process (single flight,
        as :meth:`TTLCache.get_or_set <mtaio.cache.TTLCache.get_or_set>`: every caller gets
        its result or its exception, which is not cached; a caller cancelled while waiting
        leaves the load running for the others). With ``cross_process`` (the cache's
        ``cross_process`` by default) they call it once in the whole fleet: one process
        takes a lease on the key and loads, the others are notified when its value is
        stored (Pub/Sub) and read it; if the holder dies, one of them loads after at most
        ``lease_time``.

        Args:
            key: The key.
            factory: A sync or async callable returning the value.
            ttl: As for :meth:`set`.
            refresh_ahead: Seconds before expiry from which a hit also starts a background
                reload (one per key in the fleet with ``cross_process``) while the current
                value is still served.
            cross_process: Override the cache's ``cross_process`` for this call.

        Returns:
            The cached or computed value.

        Raises:
            CacheConnectionError: The replicas could not be read or written, or the cache
                was closed during the load.
            Exception: Whatever ``factory`` raised.
        """
        rkey = self._key(key)
        px = self._ttl_ms(ttl)
        if refresh_ahead is not None:
            require_positive("refresh_ahead", refresh_ahead)
        if cross_process is None:
            cross_process = self._cross
        elif not isinstance(cross_process, bool):
            raise ConfigurationTypeError(f"cross_process must be a bool, got {cross_process!r}")
        value: T = await self._get_or_load(rkey, factory, px, refresh_ahead, cross_process)
        return value

    async def invalidate_tags(self, *tags: str) -> None:
        """Make every value written with any of ``tags`` a miss, in every process.

        One write per tag (a new version token), however many values carry it: the
        values stay on the nodes until their TTL, unreadable.

        Raises:
            CacheConnectionError: A tag's token could not be written at the write quorum.
        """
        names = check_tags(tags)
        if names:
            await self._invalidate(names)

    async def clear(self) -> None:
        """Remove every key under this cache's namespace from every node (SCAN + UNLINK).

        Keys of other namespaces and other applications on the same servers are untouched;
        this never runs ``FLUSHDB``.

        Raises:
            CacheConnectionError: A node is down or failed (the others are cleared).
        """
        self._check_open()
        errors: list[str] = []
        for node in self._by_name.values():
            if not node.up:
                errors.append(f"{node.name} is down")
                continue
            try:
                async for keys in self._scan(node):
                    if keys:
                        check_reply(await node.submit((b"UNLINK", *keys)))
            except CacheError as exc:
                errors.append(str(exc))
        if errors:
            raise CacheConnectionError("clear() did not reach every node: " + "; ".join(errors))

    async def close(self) -> None:
        """Cancel background repairs and probes and close every connection. Idempotent."""
        self._closed = True
        closed = CacheConnectionError("DistributedCache is closed")
        for node in self._by_name.values():
            node.fail_pending(closed)
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        for node in self._by_name.values():
            await node.disconnect()

    def stats(self) -> DistributedCacheStats:
        """A snapshot of the counters, the cache's and each node's (a `DistributedCacheStats`)."""
        c = self._stats
        return DistributedCacheStats(
            hits=c["hits"],
            misses=c["misses"],
            reads=c["reads"],
            writes=c["writes"],
            deletes=c["deletes"],
            repairs=c["repairs"],
            resyncs=c["resyncs"],
            corrupt_replicas=c["corrupt"],
            clock_anomalies=c["clock_anomalies"],
            loads=c["loads"],
            load_errors=c["load_errors"],
            load_waits=c["load_waits"],
            nodes={name: node.stats() for name, node in self._by_name.items()},
        )

    @property
    def nodes(self) -> list[str]:
        """Names (``host:port``) of the configured nodes, in the order given."""
        return list(self._by_name)

    def replicas(self, key: str) -> list[str]:
        """Names of the nodes that hold ``key``, preferred first."""
        return [n.name for n in self._ring.preference(self._key(key), self._rf)]

    # -- internal interface of LayeredCache ---------------------------------------------

    async def _read_entries(self, keys: Sequence[str]) -> list[tuple[Envelope | None, Any]]:
        """Read ``keys`` as :meth:`get_many` does, counting its reads, hits and misses.

        Returns:
            For each key, its newest envelope and its value, or ``MISSING`` when the key is
            missing, expired or one of its tags was invalidated since it was written.
        """
        rkeys = [self._key(k) for k in keys]
        found = [await self._read(rkeys[0])] if len(rkeys) == 1 else await self._read_many(rkeys)
        tagged = [env for env, v in found if v is not MISSING and env is not None and env.tags]
        if tagged:
            current = iter(await self._current(tagged))
            for i, (env, v) in enumerate(found):
                if v is not MISSING and env is not None and env.tags and not next(current):
                    found[i] = (env, MISSING)
        hits = 0
        for _, v in found:
            if v is not MISSING:
                hits += 1
        stats = self._stats
        stats["reads"] += len(found)
        stats["hits"] += hits
        stats["misses"] += len(found) - hits
        return found

    async def _prepare_set(
        self, key: str, value: T, ttl: float | None, tags: Iterable[str]
    ) -> tuple[bytes, bytes, int]:
        """Check and encode a write of ``value`` (nothing sent): its key, envelope and PX."""
        rkey = self._key(key)
        px = self._ttl_ms(ttl)
        if tags:
            section = await self._tag_section(check_tags(tags))
            return rkey, self._encode(rkey, tagged_kind(section), value, px, tags=section), px
        return rkey, self._encode(rkey, KIND_VALUE, value, px), px

    def _link(self, name: str) -> NodeLink:
        """The connection to the node ``name`` (one of :attr:`nodes`)."""
        return self._by_name[name]

    def _channel(self, name: bytes) -> bytes:
        """The name of this cache's channel ``name``, in its namespace."""
        return self._prefix + b"\xff" + name

    # -- internals ----------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        if key.__class__ is not str and not _is_str(key):
            raise ConfigurationTypeError(f"key must be a str, got {type(key).__name__}")
        return self._prefix + key.encode()

    def _ttl_ms(self, ttl: float | None) -> int:
        """Milliseconds for PX, or 0 for never; validates ``ttl`` (positive, not a bool)."""
        if ttl is None:
            ttl = self._default_ttl
            if ttl is None:
                return 0
        else:
            require_positive("ttl", ttl)  # refuses True, NaN, zero and negatives
            if ttl > _MAX_TTL:
                if ttl == math.inf:
                    return 0
                raise ConfigurationError(
                    f"ttl must be at most {_MAX_TTL:.0e} s (math.inf: never expires), got {ttl!r}"
                )
        return max(1, int(ttl * 1000))

    def _tombstone(self, rkey: bytes) -> bytes:
        return self._encode(rkey, KIND_TOMBSTONE, None, self._tombstone_ms, encoded=b"")


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def is_address(value: object) -> bool:
    """Whether ``value`` is a ``(host: str, port: int)`` tuple."""
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _make_pool(
    pool_cls: type[ConnectionPool], spec: NodeSpec, timeout: float, password: str | None
) -> tuple[str, ConnectionPool]:
    # redis-py's own retries stay off: failing over to another replica is our job, and a
    # retrying connection would hide a dead node for (retries x timeout).
    common: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": None,  # each batch runs under its own timeout
        "protocol": 2,
    }
    if isinstance(spec, str):
        parts = urlsplit(spec)
        if parts.scheme not in ("redis", "rediss"):
            raise ConfigurationError(
                f"a node URL must start with redis:// or rediss://, got {spec!r}"
            )
        pool = pool_cls.from_url(spec, **common)
        kwargs = pool.connection_kwargs
        name = f"{kwargs.get('host', parts.hostname)}:{kwargs.get('port', 6379)}"
        db = int(kwargs.get("db", 0) or 0)
        if db:
            name += f"/{db}"
        return name, pool
    if not is_address(spec):
        raise ConfigurationTypeError(
            f"each node must be a (host, port) tuple or a redis:// URL, got {spec!r}"
        )
    host, port = spec
    if not 0 < port < 65536:
        raise ConfigurationError(f"port must be in 1..65535, got {port} for {host!r}")
    return f"{host}:{port}", pool_cls(host=host, port=port, password=password, **common)
