r"""``get_or_set`` for a DistributedCache: one load per key, in this process and in the fleet.

In this process, concurrent misses of one key share one load task (single flight): every
caller gets its result or its exception; a caller cancelled while waiting leaves the load
running for the others, and the load is cancelled when no one waits any more.

Across processes (``cross_process=True``, the default), the load task first takes a short
lease on the key: ``SET <ns>:\xfflease:<key> <random token> NX PX <lease_time>`` on the
key's first live replica. The process that gets it re-reads the key (another may have just
stored it), loads, stores the value, PUBLISHes the key on the namespace's channel and
releases the lease (only if it still holds that token). The others SUBSCRIBE to the channel
(``_notify.py``) and wait for the message, re-reading the key when it comes, with a bounded
back-off re-check as a safety net. When the lease disappears without a value (the holder
failed, or died and its lease expired) they try to take it themselves, so a dead holder
delays the others by at most ``lease_time``. Choose a lease longer than your slowest load:
a load that outlives its lease may run twice.

Single flight across processes is an optimisation, not a lock: if the lease node cannot be
reached, the process loads on its own rather than not at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from mtaio.exceptions import CacheConnectionError
from mtaio.typing import call_maybe_async

from ._distributed_node import Failure, NodeLink
from ._flight import SingleFlight
from ._notify import LoadNotifier
from ._replicas import MISSING
from ._tags import Tagging, tagged_kind

__all__ = ("Loading",)

_log: Final = logging.getLogger("mtaio.cache")
LEASE_SPACE: Final = b"\xfflease:"
LOADED_CHANNEL: Final = b"\xffloaded"
_TOKEN_BYTES: Final = 16
# Re-checks while waiting for another process: notified waits only need a safety net.
_RECHECK_SUBSCRIBED: Final = (0.1, 1.0)
_RECHECK_POLLING: Final = (0.02, 0.2)

Factory = Callable[[], Awaitable[Any]] | Callable[[], Any]


class Loading(Tagging):
    """Adds single-flight loading (``get_or_set``) to the replicas."""

    __slots__ = ("_cross", "_flights", "_lease_ms", "_notifier", "_refreshing")

    def __init__(self, *, cross_process: bool, lease_time: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cross = cross_process
        self._lease_ms = max(1, int(lease_time * 1000))
        self._flights = SingleFlight(self._track, _closed_during_load)
        self._refreshing: set[bytes] = set()
        self._notifier = LoadNotifier(self._prefix + LOADED_CHANNEL, self._track)

    async def _store(self, rkey: bytes, value: Any, px: int, section: bytes = b"") -> None:
        raw = self._encode(rkey, tagged_kind(section), value, px, tags=section)
        await self._wait_write(rkey, self._submit_write(rkey, raw, px))
        self._stats["writes"] += 1

    async def _get_or_load(
        self,
        rkey: bytes,
        factory: Factory,
        px: int,
        refresh_ahead: float | None,
        cross: bool,
    ) -> Any:
        env, value = await self._read(rkey)
        value = await self._live_value(env, value)
        stats = self._stats
        stats["reads"] += 1
        if value is not MISSING:
            stats["hits"] += 1
            if (
                refresh_ahead is not None
                and env is not None
                and env.expires_at
                and env.expires_at - time.time() * 1000 <= refresh_ahead * 1000
                and rkey not in self._refreshing
                and rkey not in self._flights.flights
            ):
                self._refresh(rkey, factory, px, cross)
            return value
        stats["misses"] += 1
        flight = self._flights.flights.get(rkey)
        if flight is None:
            flight = self._flights.start(rkey, self._load(rkey, factory, px, cross))
        return await self._flights.wait(rkey, flight)

    def _refresh(self, rkey: bytes, factory: Factory, px: int, cross: bool) -> None:
        """Reload ``rkey`` in the background (stale-while-revalidate); one process does."""
        self._refreshing.add(rkey)

        async def refresh() -> None:
            try:
                await self._load(rkey, factory, px, cross, refresh=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._stats["load_errors"] += 1
                _log.warning("refresh of %r failed", rkey.decode(errors="replace"), exc_info=True)
            finally:
                self._refreshing.discard(rkey)

        self._track(asyncio.get_running_loop().create_task(refresh()))

    async def _call(self, rkey: bytes, factory: Factory, px: int) -> Any:
        self._stats["loads"] += 1
        try:
            value = await call_maybe_async(factory)
        except Exception:
            self._stats["load_errors"] += 1
            raise
        await self._store(rkey, value, px)
        return value

    async def _load(
        self, rkey: bytes, factory: Factory, px: int, cross: bool, refresh: bool = False
    ) -> Any:
        if not cross:
            return await self._call(rkey, factory, px)
        node = self._live(rkey)[0]
        lkey = self._prefix + LEASE_SPACE + rkey[len(self._prefix) :]
        token = os.urandom(_TOKEN_BYTES)
        loop = asyncio.get_running_loop()
        # A lease that outlives twice its time (a node whose clock does not expire it, a
        # holder that keeps renewing it) no longer holds this process back.
        give_up = loop.time() + 2 * self._lease_ms / 1000
        while True:
            got = await node.submit((b"SET", lkey, token, b"NX", b"PX", self._lease_ms))
            if got.__class__ is Failure or (got is None and loop.time() >= give_up):
                # The lease node is unreachable: load without a lease, not not at all.
                return await self._call(rkey, factory, px)
            if got is not None:
                return await self._load_holding(node, rkey, lkey, token, factory, px, refresh)
            if refresh:
                return MISSING  # another process is refreshing it
            self._stats["load_waits"] += 1
            value = await self._await_holder(node, rkey, lkey)
            if value is not MISSING:
                return value

    async def _load_holding(
        self,
        node: NodeLink,
        rkey: bytes,
        lkey: bytes,
        token: bytes,
        factory: Factory,
        px: int,
        refresh: bool,
    ) -> Any:
        try:
            if not refresh:
                # The previous holder may have stored the value just before we got the lease.
                env, value = await self._read(rkey)
                value = await self._live_value(env, value)
                if value is not MISSING:
                    return value
            return await self._call(rkey, factory, px)
        finally:
            # Tell the waiters (a value to read, or a free lease to take), then let go.
            node.submit((b"PUBLISH", self._notifier.channel, rkey))
            node.submit((b"GET", lkey)).add_done_callback(
                lambda fut: fut.result() == token and node.submit((b"DEL", lkey))
            )

    async def _await_holder(self, node: NodeLink, rkey: bytes, lkey: bytes) -> Any:
        """Wait for another process's load: its value, or ``MISSING`` once its lease is gone."""
        loop = asyncio.get_running_loop()
        notifier = self._notifier
        fut = notifier.register(rkey)
        try:
            subscribed = await notifier.subscribed(node, self._timeout)
            delay, longest = _RECHECK_SUBSCRIBED if subscribed else _RECHECK_POLLING
            limit = loop.time() + self._lease_ms / 1000
            while True:
                lease = node.submit((b"PTTL", lkey))  # shares the read's round trip
                env, value = await self._read(rkey)
                value = await self._live_value(env, value)
                left = await lease
                if value is not MISSING:
                    return value
                now = loop.time()
                if left.__class__ is Failure or not isinstance(left, int) or left < 0:
                    return MISSING  # released or expired: the lease is free to take
                if now >= limit:
                    return MISSING
                wait = min(delay, left / 1000 + 0.001, limit - now)
                if not fut.done():
                    await asyncio.wait((fut,), timeout=wait)
                if fut.done():
                    notifier.unregister(rkey, fut)
                    fut = notifier.register(rkey)
                delay = min(delay * 2, longest)
        finally:
            notifier.unregister(rkey, fut)


def _closed_during_load(_: object) -> Exception:
    return CacheConnectionError("DistributedCache was closed during the load")
