"""DistributedCache: a replicated cache over Redis-protocol nodes (Redis, Valkey, CacheNode).

Placement: a consistent-hash ring gives each key a preference list of ``replication_factor``
distinct nodes. Writes go to every live replica at once and return after ``write_quorum``
acknowledgements; reads ask ``read_quorum`` replicas (falling over to the next one on failure)
and return the newest version. Every value is stored in an envelope carrying a hybrid logical
clock version and the writer's id, so disagreeing replicas resolve the same way everywhere;
the stale ones are rewritten in the background (read repair), and a node coming back after a
failure is resynchronised from its peers. Deletes write tombstones, so a repair can never
resurrect a deleted value while the tombstone lives.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
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

from ._distributed_node import CacheTimeoutError, Failure, NodeLink, NodeStats
from ._hashing import HashRing
from ._serial import (
    KIND_TOMBSTONE,
    KIND_VALUE,
    CacheSerializationError,
    Envelope,
    JsonSerializer,
    Serializer,
    pack_envelope,
    unpack_envelope,
)

if TYPE_CHECKING:
    from redis.asyncio.connection import ConnectionPool

__all__ = ("CacheDependencyError", "CacheTimeoutError", "DistributedCache", "DistributedCacheStats")

T = TypeVar("T")
D = TypeVar("D")
_log: Final = logging.getLogger("mtaio.cache")
_INSTALL_HINT: Final = "pip install 'mtaio-cache[redis]'"
_SCAN_COUNT: Final = 500


class CacheDependencyError(CacheError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


@final
class _Hlc:
    """A hybrid logical clock: wall-clock milliseconds << 16 | a counter, never going back."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def now(self) -> int:
        phys = int(time.time() * 1000) << 16
        last = self._last
        self._last = value = phys if phys > last else last + 1
        return value

    def observe(self, version: int) -> None:
        if version > self._last:
            self._last = version


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
        repairs: Stale or missing replicas rewritten by read repair.
        resyncs: Resynchronisations of a node that came back up.
        nodes: Each node's :class:`NodeStats`, keyed by its name (``host:port``).
    """

    hits: int
    misses: int
    reads: int
    writes: int
    deletes: int
    repairs: int
    resyncs: int
    nodes: dict[str, NodeStats]


@final
class DistributedCache(Generic[T]):
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
        default_ttl: Seconds a value lives when ``set`` gets no ``ttl``; ``None``: forever.
        namespace: Prefix of every key on the nodes (``"<namespace>:<key>"``); ``clear``
            removes only keys under it.
        serializer: Encodes values; :class:`~mtaio.cache.JsonSerializer` by default.
        timeout: Seconds a request to one node may take (connect included) before that
            node counts as failed for the request.
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

    Raises:
        CacheDependencyError: redis-py is not installed.
        ConfigurationError: An argument is out of range (e.g. a quorum larger than the
            replication factor).
    """

    __slots__ = (
        "__weakref__",
        "_by_name",
        "_closed",
        "_default_ttl",
        "_down_backoff",
        "_hlc",
        "_max_backoff",
        "_namespace",
        "_prefix",
        "_r",
        "_repair_chance",
        "_resync_again",
        "_resyncing",
        "_rf",
        "_ring",
        "_serializer",
        "_stats",
        "_tasks",
        "_timeout",
        "_tombstone_ms",
        "_w",
        "_writer",
    )

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
        self._rf = min(replication_factor, len(nodes))
        self._r = require_positive_int("read_quorum", read_quorum)
        self._w = require_positive_int("write_quorum", write_quorum)
        for name, value in (("read_quorum", read_quorum), ("write_quorum", write_quorum)):
            if value > self._rf:
                raise ConfigurationError(
                    f"{name} must be at most the replication factor ({self._rf}), got {value}"
                )
        if default_ttl is not None:
            require_positive("default_ttl", default_ttl)
        if not _is_str(namespace) or not namespace:
            raise ConfigurationError(f"namespace must be a non-empty str, got {namespace!r}")
        if serializer is None:
            serializer = JsonSerializer()
        elif not isinstance(serializer, Serializer):
            raise ConfigurationTypeError(
                "serializer must have dumps(value) -> bytes and loads(bytes) -> value, "
                f"got {type(serializer).__name__}"
            )
        self._timeout = require_positive("timeout", timeout)
        require_positive_int("failure_threshold", failure_threshold)
        self._down_backoff = require_positive("down_backoff", down_backoff)
        self._max_backoff = max(require_positive("max_backoff", max_backoff), down_backoff)
        self._tombstone_ms = max(1, int(require_positive("tombstone_ttl", tombstone_ttl) * 1000))
        if not 0.0 <= read_repair_chance <= 1.0:
            raise ConfigurationError(
                f"read_repair_chance must be in [0, 1], got {read_repair_chance!r}"
            )
        self._repair_chance = float(read_repair_chance)
        self._default_ttl = default_ttl
        self._namespace = namespace
        self._prefix = namespace.encode() + b":"
        self._serializer: Serializer = serializer
        self._hlc = _Hlc()
        self._writer = random.getrandbits(32)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resyncing: set[str] = set()
        self._resync_again: set[str] = set()
        self._closed = False
        self._stats = dict.fromkeys(
            ("hits", "misses", "reads", "writes", "deletes", "repairs", "resyncs"), 0
        )
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
                    ),
                )
            )
        self._ring: HashRing[NodeLink] = HashRing(links, vnodes=vnodes)
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

        Raises:
            CacheConnectionError: Fewer than ``read_quorum`` replicas answered.
            CacheSerializationError: The stored bytes are not a value this cache wrote.
        """
        env = await self._read(self._key(key))
        self._stats["reads"] += 1
        if env is None or env.kind != KIND_VALUE:
            self._stats["misses"] += 1
            return default
        self._stats["hits"] += 1
        return self._serializer.loads(env.payload)

    async def set(self, key: str, value: T, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` on its replicas.

        Args:
            key: The key.
            value: The value; it must be encodable by the serializer.
            ttl: Seconds to live; ``None`` uses ``default_ttl``.

        Raises:
            CacheSerializationError: The serializer cannot encode ``value`` (nothing written).
            CacheConnectionError: Fewer than ``write_quorum`` replicas acknowledged.
        """
        rkey = self._key(key)
        raw, px = self._envelope(KIND_VALUE, self._serializer.dumps(value), self._ttl_ms(ttl))
        await self._wait_write(rkey, self._submit_write(rkey, raw, px))
        self._stats["writes"] += 1

    async def delete(self, key: str) -> bool:
        """Delete ``key`` (a missing key is not an error); return whether it held a value.

        The replicas keep a small tombstone for ``tombstone_ttl`` seconds so a lagging
        replica cannot bring the old value back. The answer comes from the replicas that
        acknowledged (``SET ... GET``), at least ``write_quorum`` of them.
        """
        rkey = self._key(key)
        raw, px = self._envelope(KIND_TOMBSTONE, b"", self._tombstone_ms)
        replies = await self._wait_write(rkey, self._submit_write(rkey, raw, px, get=True))
        self._stats["deletes"] += 1
        return _held_value(replies)

    async def has(self, key: str) -> bool:
        """Whether ``key`` holds a live value."""
        env = await self._read(self._key(key))
        return env is not None and env.kind == KIND_VALUE

    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Give ``key`` a fresh time to live; return whether it held a value.

        Args:
            key: The key.
            ttl: The new time to live in seconds; ``None`` uses ``default_ttl`` (and with
                no default the value then never expires).
        """
        rkey = self._key(key)
        env = await self._read(rkey)
        if env is None or env.kind != KIND_VALUE:
            return False
        raw, px = self._envelope(KIND_VALUE, env.payload, self._ttl_ms(ttl))
        await self._wait_write(rkey, self._submit_write(rkey, raw, px))
        return True

    async def get_many(self, keys: Iterable[str]) -> dict[str, T]:
        """Return the values of the ``keys`` that exist, in one round trip per node."""
        rkeys = [(k, self._key(k)) for k in keys]
        envs: list[Envelope | None]
        if self._r == 1:
            # One GET per key to its first live replica, all queued before the first await
            # so they share each node's round trip; a failed one falls over on its own.
            firsts = [(rk, self._live(rk)[0].submit((b"GET", rk))) for _, rk in rkeys]
            envs = []
            for rk, fut in firsts:
                res = await fut
                if res.__class__ is Failure:
                    envs.append(await self._read(rk))
                else:
                    envs.append(self._decode(res))
        else:
            envs = list(await asyncio.gather(*(self._read(rk) for _, rk in rkeys)))
        out: dict[str, T] = {}
        loads = self._serializer.loads
        for (k, _), env in zip(rkeys, envs, strict=True):
            self._stats["reads"] += 1
            if env is None or env.kind != KIND_VALUE:
                self._stats["misses"] += 1
            else:
                self._stats["hits"] += 1
                out[k] = loads(env.payload)
        return out

    async def set_many(self, items: Mapping[str, T], ttl: float | None = None) -> None:
        """Store every item, batched per node; every value is encoded before anything is sent.

        Raises:
            CacheSerializationError: A value cannot be encoded (nothing written).
            CacheConnectionError: Some key missed its write quorum (the others are written).
        """
        px = self._ttl_ms(ttl)
        dumps = self._serializer.dumps
        prepared = [
            (self._key(k), self._envelope(KIND_VALUE, dumps(v), px)) for k, v in items.items()
        ]
        await self._write_all(prepared)
        self._stats["writes"] += len(prepared)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete every key in ``keys``, batched per node; return how many held a value."""
        prepared = [
            (self._key(k), self._envelope(KIND_TOMBSTONE, b"", self._tombstone_ms)) for k in keys
        ]
        replies = await self._write_all(prepared, get=True)
        self._stats["deletes"] += len(prepared)
        return sum(_held_value(r) for r in replies)

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
                        _check(await node.submit((b"UNLINK", *keys)))
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
            nodes={name: node.stats() for name, node in self._by_name.items()},
        )

    @property
    def nodes(self) -> list[str]:
        """Names (``host:port``) of the configured nodes, in the order given."""
        return list(self._by_name)

    def replicas(self, key: str) -> list[str]:
        """Names of the nodes that hold ``key``, preferred first."""
        return [n.name for n in self._ring.preference(self._key(key), self._rf)]

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CacheConnectionError("DistributedCache is closed")

    def _key(self, key: str) -> bytes:
        if key.__class__ is not str and not _is_str(key):
            raise ConfigurationTypeError(f"key must be a str, got {type(key).__name__}")
        return self._prefix + key.encode()

    def _ttl_ms(self, ttl: float | None) -> int:
        if ttl is None:
            ttl = self._default_ttl
            if ttl is None:
                return 0
        elif not (ttl > 0):  # also refuses NaN
            raise ConfigurationError(f"ttl must be a positive number of seconds, got {ttl!r}")
        return max(1, int(ttl * 1000))

    def _envelope(self, kind: int, payload: bytes, px: int) -> tuple[bytes, int]:
        expires_at = int(time.time() * 1000) + px if px else 0
        return pack_envelope(kind, self._hlc.now(), self._writer, expires_at, payload), px

    def _live(self, rkey: bytes) -> list[NodeLink]:
        self._check_open()
        prefs = self._ring.preference(rkey, self._rf)
        live = [n for n in prefs if n.up]
        if not live:
            raise CacheConnectionError(
                f"every replica of {rkey.decode(errors='replace')!r} is down: "
                + ", ".join(n.name for n in prefs)
            )
        return live

    def _submit_write(
        self, rkey: bytes, raw: bytes, px: int, get: bool = False
    ) -> list[asyncio.Future[Any]]:
        live = self._live(rkey)
        if len(live) < self._w:
            raise CacheConnectionError(
                f"write quorum {self._w} unreachable for {rkey.decode(errors='replace')!r}: "
                f"only {len(live)} of its replicas are up"
            )
        cmd: tuple[Any, ...] = (b"SET", rkey, raw, b"PX", px) if px else (b"SET", rkey, raw)
        if get:
            cmd += (b"GET",)
        return [n.submit(cmd) for n in live]

    async def _wait_write(self, rkey: bytes, futs: list[asyncio.Future[Any]]) -> list[Any]:
        """Wait for the write quorum; return the replies of the replicas that acknowledged."""
        if len(futs) == 1:
            return [_check(await futs[0])]
        need = self._w
        errors: list[str] = []
        replies: list[Any] = []
        ok = 0
        # Wait for the quorum only: replicas beyond it finish on their own (their futures
        # always resolve, to a value or a Failure, so nothing is left unobserved).
        loop = asyncio.get_running_loop()
        quorum: asyncio.Future[None] = loop.create_future()
        left = len(futs)

        def on_done(fut: asyncio.Future[Any]) -> None:
            nonlocal ok, left
            left -= 1
            if quorum.done():
                return
            res = fut.result()
            if res.__class__ is Failure:
                errors.append(str(res.error))
                if ok + left < need:
                    quorum.set_result(None)
            else:
                ok += 1
                replies.append(res)
                if ok >= need:
                    quorum.set_result(None)

        for fut in futs:
            fut.add_done_callback(on_done)
        await quorum
        if ok < need:
            raise CacheConnectionError(
                f"write quorum {need} not reached for {rkey.decode(errors='replace')!r}: "
                + "; ".join(errors)
            )
        return replies

    async def _write_all(
        self, prepared: list[tuple[bytes, tuple[bytes, int]]], get: bool = False
    ) -> list[list[Any]]:
        submitted = [(rk, self._submit_write(rk, raw, px, get)) for rk, (raw, px) in prepared]
        errors: list[BaseException] = []
        replies: list[list[Any]] = []
        for rk, futs in submitted:
            try:
                replies.append(await self._wait_write(rk, futs))
            except CacheError as exc:
                errors.append(exc)
        if errors:
            raise CacheConnectionError(
                f"{len(errors)} of {len(prepared)} writes failed; first: {errors[0]}"
            )
        return replies

    async def _read(self, rkey: bytes) -> Envelope | None:
        live = self._live(rkey)
        cmd = (b"GET", rkey)
        if self._r == 1:
            error: CacheError | None = None
            for i, node in enumerate(live):
                res = await node.submit(cmd)
                if res.__class__ is Failure:
                    error = res.error
                    continue
                env = self._decode(res)
                if (
                    self._repair_chance
                    and i + 1 < len(live)
                    and random.random() < self._repair_chance
                ):
                    self._background_check(rkey, node, env, live[i + 1 :])
                return env
            assert error is not None
            raise error
        return await self._read_quorum(rkey, live, cmd)

    def _background_check(
        self, rkey: bytes, first: NodeLink, env: Envelope | None, others: list[NodeLink]
    ) -> None:
        """Read repair for ``read_quorum=1``: compare the other replicas off the hot path."""
        answers: list[tuple[NodeLink, Envelope | None]] = [(first, env)]
        left = len(others)

        def on_done(node: NodeLink, fut: asyncio.Future[Any]) -> None:
            nonlocal left
            left -= 1
            res = fut.result()
            if res.__class__ is not Failure:
                try:
                    answers.append((node, None if res is None else unpack_envelope(res)))
                except CacheSerializationError:
                    answers.append((node, None))  # garbage is overwritten like a stale copy
            if left == 0:
                self._repair_stale(rkey, answers)

        for node in others:
            node.submit((b"GET", rkey)).add_done_callback(partial(on_done, node))

    def _repair_stale(
        self, rkey: bytes, answers: list[tuple[NodeLink, Envelope | None]]
    ) -> Envelope | None:
        """Rewrite every answer older than the newest one; return the newest."""
        newest: Envelope | None = None
        for _, env in answers:
            if env is not None and (newest is None or env.order > newest.order):
                newest = env
        if newest is not None:
            for node, env in answers:
                if env is None or env.order < newest.order:
                    self._repair(node, rkey, newest)
        return newest

    def _decode(self, res: bytes | None) -> Envelope | None:
        if res is None:
            return None
        env = unpack_envelope(res)
        self._hlc.observe(env.version)
        return env

    async def _read_quorum(
        self, rkey: bytes, live: list[NodeLink], cmd: tuple[bytes, bytes]
    ) -> Envelope | None:
        need = self._r
        if len(live) < need:
            raise CacheConnectionError(
                f"read quorum {need} unreachable for {rkey.decode(errors='replace')!r}: "
                f"only {len(live)} of its replicas are up"
            )
        pending = {live[i].submit(cmd): live[i] for i in range(need)}
        spare = live[need:]
        answers: list[tuple[NodeLink, Envelope | None]] = []
        errors: list[str] = []
        bad: CacheSerializationError | None = None
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                node = pending.pop(fut)
                res = fut.result()
                if res.__class__ is Failure:
                    errors.append(str(res.error))
                    if spare:
                        nxt = spare.pop(0)
                        pending[nxt.submit(cmd)] = nxt
                    continue
                env: Envelope | None = None
                if res is not None:
                    try:
                        env = unpack_envelope(res)
                    except CacheSerializationError as exc:
                        bad = exc  # a replica holding garbage is repaired like a stale one
                answers.append((node, env))
        if len(answers) < need:
            raise CacheConnectionError(
                f"read quorum {need} not reached for {rkey.decode(errors='replace')!r}: "
                + "; ".join(errors)
            )
        newest = self._repair_stale(rkey, answers)
        if newest is None:
            if bad is not None:
                raise bad
            return None
        self._hlc.observe(newest.version)
        return newest

    def _repair(self, node: NodeLink, rkey: bytes, newest: Envelope) -> None:
        # Fire and forget: the write joins the node's next batch; its future resolves on its
        # own. A value already past its expiry is not copied.
        if newest.expires_at:
            px = newest.expires_at - int(time.time() * 1000)
            if px <= 0:
                return
            node.submit((b"SET", rkey, newest.raw, b"PX", px))
        else:
            node.submit((b"SET", rkey, newest.raw))
        self._stats["repairs"] += 1

    async def _scan(self, node: NodeLink) -> AsyncIterator[list[bytes]]:
        pattern = _glob_escape(self._prefix) + b"*"
        cursor = b"0"
        while True:
            reply = _check(
                await node.submit((b"SCAN", cursor, b"MATCH", pattern, b"COUNT", _SCAN_COUNT))
            )
            cursor, keys = reply[0], list(reply[1])
            yield keys
            if cursor in (b"0", 0):
                return

    # -- health ---------------------------------------------------------------------------

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _node_down(self, node: NodeLink) -> None:
        if not self._closed:
            self._track(asyncio.get_running_loop().create_task(self._probe(node)))

    def _node_recovered(self, node: NodeLink) -> None:
        if self._closed or self._rf == 1:
            return
        if node.name in self._resyncing:
            self._resync_again.add(node.name)  # run once more when the current one ends
            return
        self._resyncing.add(node.name)
        self._track(asyncio.get_running_loop().create_task(self._resync(node)))

    async def _probe(self, node: NodeLink) -> None:
        backoff = self._down_backoff
        while True:
            await asyncio.sleep(backoff)
            if not isinstance(await node.submit((b"PING",)), Failure):
                node.mark_up()
                _log.warning("cache node %s answers again: re-admitted", node.name)
                self._node_recovered(node)
                return
            backoff = min(backoff * 2, self._max_backoff)

    async def _resync(self, node: NodeLink) -> None:
        """Copy to ``node`` every key it should hold that its peers have newer or it lacks."""
        try:
            for peer in self._by_name.values():
                if peer is node or not peer.up:
                    continue
                try:
                    async for keys in self._scan(peer):
                        mine = [k for k in keys if node in self._ring.preference(k, self._rf)]
                        if mine:
                            await self._resync_keys(node, peer, mine)
                except CacheError as exc:
                    _log.warning("resync of %s from %s stopped: %s", node.name, peer.name, exc)
                    if not node.up:
                        return
            self._stats["resyncs"] += 1
        finally:
            self._resyncing.discard(node.name)
            if node.name in self._resync_again:
                self._resync_again.discard(node.name)
                self._node_recovered(node)

    async def _resync_keys(self, node: NodeLink, peer: NodeLink, keys: list[bytes]) -> None:
        theirs = [peer.submit((b"GET", k)) for k in keys]
        ours = [node.submit((b"GET", k)) for k in keys]
        for key, tf, of in zip(keys, theirs, ours, strict=True):
            t, o = await tf, await of
            if t is None or t.__class__ is Failure:
                continue
            if o.__class__ is Failure:
                raise o.error
            try:
                newest = unpack_envelope(t)
            except CacheSerializationError:
                continue  # a foreign value on the peer: not ours to copy
            if o is not None:
                try:
                    if unpack_envelope(o).order >= newest.order:
                        continue
                except CacheSerializationError:
                    pass  # garbage on the node: overwrite it
            self._repair(node, key, newest)


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


def _held_value(replies: list[Any]) -> bool:
    """Whether any ``SET ... GET`` reply shows a live value (not a tombstone) was replaced."""
    for old in replies:
        if isinstance(old, bytes):
            try:
                if unpack_envelope(old).kind == KIND_VALUE:
                    return True
            except CacheSerializationError:
                return True  # something foreign was there, and is gone now
    return False


def _check(reply: Any) -> Any:
    if reply.__class__ is Failure:
        raise reply.error
    return reply


def _glob_escape(prefix: bytes) -> bytes:
    out = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


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
