"""TTLCache: an asyncio cache with per-entry time to live and O(1) LRU/LFU/FIFO eviction.

This module holds the cache class; its parts live beside it, one responsibility each:
the expiry bookkeeping in ``_wheel`` (entries, the default list, the timing wheel), the
eviction policies and the O(1) LFU lists in ``_policies``, single flight in ``_flight``,
the removal listeners in ``_listeners``, transactions in ``_transaction``. The hot paths
(``get``, ``set``, ``_store``) inline the few wheel and LRU steps they need rather than
calling into those modules: a call costs as much as the rest of a hit.

Every public operation finishes its bookkeeping synchronously, before any ``await``, so
there is no lock: eviction listeners run after the cache is consistent again and may use it.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    require_callable,
    require_positive,
    require_positive_int,
)
from mtaio.typing import Clock

from ._flight import SingleFlight, Uncached
from ._listeners import Listener, Removal, await_all, call_listeners, close_all, logger
from ._policies import (
    EvictionPolicy,
    EvictionReason,
    FreqNode,
    LFUEntry,
    lfu_bump,
    lfu_insert,
    lfu_keys,
    lfu_remove,
)
from ._stats import CacheStats
from ._tag_names import check_tags
from ._transaction import CacheTransaction
from ._wheel import MISSING, Entry, ExpiryWheel, unhashable

__all__ = (
    "CacheTransaction",
    "TTLCache",
    "TTLFIFOCache",
    "TTLLFUCache",
    "TTLLRUCache",
)

T = TypeVar("T")
D = TypeVar("D")

_get_running_loop = asyncio.get_running_loop
_new_object = object.__new__

_EXPIRED = EvictionReason.EXPIRED
_CAPACITY = EvictionReason.CAPACITY
_DELETED = EvictionReason.DELETED
_REPLACED = EvictionReason.REPLACED
_CLEARED = EvictionReason.CLEARED

_MISSING = MISSING
_unhashable = unhashable
_Entry = Entry
_Removal = Removal


def _timer_fired(ref: weakref.ref[TTLCache[Any]]) -> None:
    # A weak reference: a forgotten cache is collected, and its timer then does nothing.
    cache = ref()
    if cache is not None:
        cache._on_timer()


class TTLCache(Generic[T]):
    """An asyncio cache whose entries expire, bounded by an O(1) eviction policy.

    ``TTLCache[str]()`` holds ``str`` values under any hashable keys. Expired entries are
    never returned; they are purged lazily when touched, and by a background cleanup that
    starts with the first write on a running loop and stops on :meth:`close` (or the exit
    of ``async with``). The cache stays usable after :meth:`close`: the next write on a
    running loop starts the cleanup again. A cache reused under a new event loop moves
    its cleanup there on a write once two cleanup intervals passed without one.

    Example:
        >>> import asyncio
        >>> async def main() -> str | None:
        ...     async with TTLCache[str](default_ttl=60.0, max_size=1000) as cache:
        ...         await cache.set("greeting", "hello")
        ...         return await cache.get("greeting")
        >>> asyncio.run(main())
        'hello'

    Args:
        default_ttl: Seconds an entry lives when ``set`` gets no ``ttl``; ``None`` means
            entries do not expire unless given a ttl.
        max_size: The most entries held; ``None`` for no bound.
        cleanup_interval: Seconds between background purges of expired entries; ``None``
            disables the background cleanup (expired entries are still never returned).
        eviction_policy: An :class:`EvictionPolicy` or its name (``"lru"``, ``"lfu"``,
            ``"fifo"``).
        on_evicted: Called as ``on_evicted(key, value)``, sync or async, when the cache
            drops an entry by itself (it expired or made room).
        on_removed: Called as ``on_removed(key, value, reason)``, sync or async, for every
            entry that leaves, with an :class:`EvictionReason`.
        jitter: A fraction in ``[0, 1)``: each entry's ttl is shortened by a random part of
            up to that fraction, so entries written together do not all expire together.
        clock: The monotonic clock, in seconds (inject ``mtaio.typing.ManualClock`` in tests).

    Raises:
        ConfigurationError: For a non-positive ``default_ttl`` or ``cleanup_interval``, a
            ``max_size`` below 1, a ``jitter`` outside ``[0, 1)`` or an unknown policy.
        ConfigurationTypeError: For arguments of the wrong type.
    """

    __slots__ = (
        "__weakref__",
        "_cleanup_interval",
        "_clock",
        "_coalesced",
        "_data",
        "_default_ttl",
        "_dlist",
        "_entry_class",
        "_evictions",
        "_expirations",
        "_flights",
        "_freq_root",
        "_hits",
        "_inflight",
        "_jitter",
        "_lfu",
        "_listeners",
        "_load_errors",
        "_loads",
        "_lru",
        "_max_size",
        "_misses",
        "_notify",
        "_policy",
        "_tag_keys",
        "_tagged",
        "_tasks",
        "_timer",
        "_timer_due",
        "_timer_loop",
        "_wheel",
    )

    _data: dict[Hashable, _Entry]

    def __init__(
        self,
        default_ttl: float | None = 300.0,
        max_size: int | None = None,
        cleanup_interval: float | None = 60.0,
        eviction_policy: EvictionPolicy | str = EvictionPolicy.LRU,
        on_evicted: Callable[[Hashable, T], Any] | None = None,
        *,
        on_removed: Callable[[Hashable, T, EvictionReason], Any] | None = None,
        jitter: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if default_ttl is not None:
            require_positive("default_ttl", default_ttl)
            if math.isinf(default_ttl):
                default_ttl = None
        if max_size is not None:
            require_positive_int("max_size", max_size)
        if cleanup_interval is not None:
            require_positive("cleanup_interval", cleanup_interval)
        if isinstance(jitter, bool) or not isinstance(jitter, int | float):
            raise ConfigurationTypeError(f"jitter must be a number in [0, 1), got {jitter!r}")
        if not 0.0 <= jitter < 1.0:
            raise ConfigurationError(f"jitter must be a number in [0, 1), got {jitter!r}")
        require_callable("clock", clock)
        self._policy = EvictionPolicy.parse(eviction_policy)
        self._default_ttl: float | None = default_ttl
        self._max_size = max_size
        self._cleanup_interval = cleanup_interval
        self._jitter = float(jitter)
        self._clock = clock
        self._lru = self._policy is EvictionPolicy.LRU
        self._lfu = self._policy is EvictionPolicy.LFU
        self._data = {} if self._lfu else OrderedDict()
        self._entry_class: type[_Entry] = LFUEntry if self._lfu else _Entry
        self._freq_root = FreqNode(0)
        self._wheel = ExpiryWheel()
        self._dlist = self._wheel.dlist  # the hot path appends to it inline
        self._listeners: list[Listener] = []
        self._notify = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flights = SingleFlight(self._track)
        self._inflight = self._flights.flights  # the hot paths test it for emptiness
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        # When a write should next check that the cleanup runs on the current loop (see
        # _ensure_timer): -inf makes the first write check.
        self._timer_due = -math.inf
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._loads = self._load_errors = self._coalesced = 0
        # Tags: key -> its tags, and tag -> its keys. Both stay empty (and every hot path
        # pays one emptiness test) until a write gives tags; an entry leaving drops its key
        # from both, so the index never outgrows the live tagged entries.
        self._tagged: dict[Hashable, tuple[str, ...]] = {}
        self._tag_keys: dict[str, set[Hashable]] = {}
        if on_evicted is not None:
            self._listeners.append(Listener(require_callable("on_evicted", on_evicted), True))
        if on_removed is not None:
            self._listeners.append(Listener(require_callable("on_removed", on_removed), False))
        self._notify = bool(self._listeners)

    # ------------------------------------------------------------------ properties

    @property
    def default_ttl(self) -> float | None:
        """Seconds an entry lives when ``set`` gets no ttl (``None``: no expiry)."""
        return self._default_ttl

    @property
    def max_size(self) -> int | None:
        """The most entries held, or ``None``."""
        return self._max_size

    @property
    def eviction_policy(self) -> EvictionPolicy:
        """The eviction policy."""
        return self._policy

    @property
    def cleanup_interval(self) -> float | None:
        """Seconds between background purges, or ``None`` when disabled."""
        return self._cleanup_interval

    # ------------------------------------------------------------------ listeners

    def add_listener(self, callback: Callable[[Hashable, T, EvictionReason], Any]) -> None:
        """Call ``callback(key, value, reason)`` (sync or async) whenever an entry leaves.

        Listeners run after the cache is consistent again, so they may use the cache. An
        exception from a listener is logged on ``mtaio.cache`` and does not fail the
        operation that removed the entry.

        Args:
            callback: The listener.
        """
        self._listeners.append(Listener(require_callable("callback", callback), False))
        self._notify = True

    def remove_listener(self, callback: Callable[..., Any]) -> bool:
        """Stop calling a listener added with :meth:`add_listener` (or the constructor).

        Args:
            callback: The listener.

        Returns:
            Whether it was registered.
        """
        for i, listener in enumerate(self._listeners):
            if listener.callback == callback:
                del self._listeners[i]
                self._notify = bool(self._listeners)
                return True
        return False

    # ------------------------------------------------------------------ reading

    @overload
    async def get(self, key: Hashable) -> T | None: ...
    @overload
    async def get(self, key: Hashable, default: D) -> T | D: ...
    async def get(self, key: Hashable, default: Any = None) -> Any:
        """Return the live value under ``key``, or ``default``.

        A hit refreshes the entry's recency (LRU) or use count (LFU).

        Args:
            key: Any hashable key.
            default: What to return on a miss.

        Returns:
            The value, or ``default`` if the key is missing or expired.

        Raises:
            ConfigurationTypeError: If ``key`` is not hashable.
        """
        try:
            entry = self._data.get(key)
        except TypeError:
            raise _unhashable(key) from None
        if entry is None:
            self._misses += 1
            return default
        expires = entry.expires
        if expires is not None and expires <= self._clock():
            self._misses += 1
            removed = self._expire_entry(entry)
            if removed is not None:
                await self._dispatch(removed)
            return default
        if self._lru:
            self._data.move_to_end(key)  # type: ignore[attr-defined]
        elif self._lfu:
            lfu_bump(entry)  # type: ignore[arg-type]
        self._hits += 1
        return entry.value

    def _hit(self, key: Hashable) -> Any:
        """A synchronous hit for an owning cache (LayeredCache): the value, or ``MISSING``.

        Counts the hit and the use (LRU/LFU) as :meth:`get` does; a miss is not counted
        and an expired entry is left for the purge.
        """
        entry = self._data.get(key)
        if entry is None:
            return _MISSING
        expires = entry.expires
        if expires is not None and expires <= self._clock():
            return _MISSING
        if self._lru:
            self._data.move_to_end(key)  # type: ignore[attr-defined]
        elif self._lfu:
            lfu_bump(entry)  # type: ignore[arg-type]
        self._hits += 1
        return entry.value

    async def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, T]:
        """Return the live values under ``keys``; missing and expired keys are left out.

        Args:
            keys: The keys to look up.

        Returns:
            A dict of the keys found and their values, in the order asked.
        """
        out: dict[Hashable, T] = {}
        for key in keys:
            value = await self.get(key, _MISSING)
            if value is not _MISSING:
                out[key] = value
        return out

    async def has(self, key: Hashable) -> bool:
        """Tell whether ``key`` holds a live entry, without counting a hit or a use.

        Args:
            key: Any hashable key.

        Returns:
            True if a live entry is there. An expired entry found is purged.
        """
        entry = self._lookup(key)
        if entry is None:
            return False
        expires = entry.expires
        if expires is not None and expires <= self._clock():
            removed = self._expire_entry(entry)
            if removed is not None:
                await self._dispatch(removed)
            return False
        return True

    contains = has

    async def ttl(self, key: Hashable) -> float | None:
        """Return the seconds ``key`` has left to live.

        Args:
            key: Any hashable key.

        Returns:
            The remaining seconds; ``math.inf`` if the entry never expires; ``None`` if the
            key is missing or expired.
        """
        entry = self._lookup(key)
        if entry is None:
            return None
        expires = entry.expires
        if expires is None:
            return math.inf
        left = expires - self._clock()
        if left <= 0:
            removed = self._expire_entry(entry)
            if removed is not None:
                await self._dispatch(removed)
            return None
        return left

    def __contains__(self, key: object) -> bool:
        """Tell synchronously whether ``key`` holds a live entry (no side effect)."""
        try:
            entry = self._data.get(key)
        except TypeError:
            return False
        if entry is None:
            return False
        expires = entry.expires
        return expires is None or expires > self._clock()

    def __len__(self) -> int:
        """The number of live entries (expired ones are purged first)."""
        self.purge_expired()
        return len(self._data)

    def __bool__(self) -> bool:
        """A cache is always true, even when empty (unlike a dict): it is an object."""
        return True

    def keys(self) -> list[Hashable]:
        """Return the keys of the live entries, synchronously, as a snapshot list.

        Expired entries are purged first. For LRU the order is least recently used first;
        for FIFO oldest first; for LFU least used first. Use it to iterate (a ``SCAN``)
        while the cache changes: the list does not.

        Returns:
            A new list of keys.
        """
        self.purge_expired()
        if not self._lfu:
            return list(self._data)
        return lfu_keys(self._freq_root)

    def items(self) -> list[tuple[Hashable, T]]:
        """Return ``(key, value)`` pairs of the live entries, synchronously, as a snapshot.

        In the order of :meth:`keys`; nothing is counted as a hit or a use.

        Returns:
            A new list of pairs.
        """
        data = self._data
        return [(key, data[key].value) for key in self.keys()]

    def __iter__(self) -> Iterator[Hashable]:
        """Iterate over a snapshot of the live keys (see :meth:`keys`)."""
        return iter(self.keys())

    @overload
    def peek(self, key: Hashable) -> T | None: ...
    @overload
    def peek(self, key: Hashable, default: D) -> T | D: ...
    def peek(self, key: Hashable, default: Any = None) -> Any:
        """Return the live value under ``key`` synchronously, changing nothing.

        No hit, miss, recency or use is recorded and nothing is purged.

        Args:
            key: Any hashable key.
            default: What to return on a miss.

        Returns:
            The value, or ``default``.
        """
        entry = self._lookup(key)
        if entry is None:
            return default
        expires = entry.expires
        if expires is not None and expires <= self._clock():
            return default
        return entry.value

    # ------------------------------------------------------------------ writing

    async def set(
        self, key: Hashable, value: T, ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store ``value`` under ``key``.

        Args:
            key: Any hashable key.
            value: The value.
            ttl: Seconds it lives; ``None`` uses ``default_ttl``; ``math.inf`` never
                expires. A ttl of zero or less is an error, never "the default".
            tags: Groups the entry belongs to: :meth:`invalidate_tags` removes every entry
                of a group. They replace the tags of the value overwritten.

        Raises:
            ConfigurationError: If ``ttl`` is not positive.
            ConfigurationTypeError: If ``ttl`` is not a number, ``key`` is not hashable or
                a tag is not a string.
        """
        data = self._data
        if tags:
            tag_tuple = check_tags(tags)
            removed = self._store(key, value, ttl)
            self._tag(key, tag_tuple)
        elif ttl is not None or self._jitter or self._lfu:
            removed = self._store(key, value, ttl)
        else:
            # The hot path, inlined (LRU/FIFO, default ttl); _store is the general case and
            # the model tests run both.
            try:
                entry = data.get(key)
            except TypeError:
                raise _unhashable(key) from None
            if entry is not None:
                removed = self._store(key, value, ttl)
            else:
                removed = None
                now = self._clock()
                if now > self._timer_due:
                    self._ensure_timer(now)
                default_ttl = self._default_ttl
                expires = None if default_ttl is None else now + default_ttl
                max_size = self._max_size
                if max_size is not None and len(data) >= max_size:
                    entry = data.popitem(last=False)[1]  # type: ignore[call-arg]
                    victim_expires = entry.expires
                    if victim_expires is not None:
                        prev = entry.wprev
                        nxt = entry.wnext
                        prev.wnext = nxt
                        nxt.wprev = prev
                        if prev is nxt and prev.expires is not None:
                            self._wheel.drop_bucket(prev)
                    if victim_expires is not None and victim_expires <= now:
                        self._expirations += 1
                        reason = _EXPIRED
                    else:
                        self._evictions += 1
                        reason = _CAPACITY
                    if self._notify:
                        removed = [(entry.key, entry.value, reason)]
                    if self._tagged:
                        self._untag(entry.key)
                    # the victim is recycled as the new entry (see _store)
                else:
                    entry = _new_object(_Entry)
                entry.key = key
                entry.value = value
                entry.expires = expires
                data[key] = entry
                if expires is not None:
                    dlist = self._dlist
                    last = dlist.wprev
                    last.wnext = entry
                    entry.wprev = last
                    entry.wnext = dlist
                    dlist.wprev = entry
                if self._inflight:
                    self._flights.mark_stale(key)
        if removed is not None:
            await self._dispatch(removed)

    async def set_many(
        self, items: Mapping[Hashable, T], ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store every item of ``items`` (all with the same ``ttl`` and ``tags``).

        Args:
            items: Keys and values.
            ttl: As for :meth:`set`.
            tags: As for :meth:`set`.
        """
        self._check_ttl(ttl)
        tag_tuple = check_tags(tags) if tags else ()
        removed: list[_Removal] = []
        for key, value in items.items():
            out = self._store(key, value, ttl)
            if tag_tuple:
                self._tag(key, tag_tuple)
            if out is not None:
                removed += out
        if removed:
            await self._dispatch(removed)

    async def delete(self, key: Hashable) -> bool:
        """Remove ``key``. Deleting a missing key is not an error.

        Args:
            key: Any hashable key.

        Returns:
            Whether a live entry was removed.
        """
        removed: list[_Removal] = []
        found = self._delete(key, removed)
        if removed:
            await self._dispatch(removed)
        return found

    async def delete_many(self, keys: Iterable[Hashable]) -> int:
        """Remove every key of ``keys``; missing keys are skipped.

        Args:
            keys: The keys.

        Returns:
            How many live entries were removed.
        """
        removed: list[_Removal] = []
        count = 0
        for key in keys:
            count += self._delete(key, removed)
        if removed:
            await self._dispatch(removed)
        return count

    async def clear(self) -> None:
        """Remove every entry (listeners hear ``CLEARED`` for each live one)."""
        removed: list[_Removal] = []
        self._clear(removed)
        if removed:
            await self._dispatch(removed)

    async def invalidate_tags(self, *tags: str) -> None:
        """Remove every entry written with any of ``tags`` (listeners hear ``DELETED``).

        Example:
            >>> async def demo(cache: TTLCache[str]) -> None:
            ...     await cache.set("user:7:name", "Ada", tags=("user:7",))
            ...     await cache.invalidate_tags("user:7")

        Args:
            tags: Tag names.

        Raises:
            ConfigurationTypeError: If a tag is not a string.
        """
        check_tags(tags)
        keys: list[Hashable] = []
        for tag in tags:
            members = self._tag_keys.get(tag)
            if members:
                keys += members
        if not keys:
            return
        removed: list[_Removal] = []
        for key in keys:
            self._delete(key, removed)
        if removed:
            await self._dispatch(removed)

    async def touch(self, key: Hashable, ttl: float | None = None) -> bool:
        """Restart the life of a live entry, as a use (LRU recency, LFU count).

        Args:
            key: Any hashable key.
            ttl: Its new time to live from now; ``None`` uses ``default_ttl``.

        Returns:
            Whether a live entry was there.
        """
        expires = self._expiry(ttl)
        entry = self._lookup(key)
        if entry is None:
            return False
        old = entry.expires
        if old is not None and old <= self._clock():
            removed = self._expire_entry(entry)
            if removed is not None:
                await self._dispatch(removed)
            return False
        if old is not None:
            self._wheel.remove(entry)
        entry.expires = expires
        if expires is not None:
            self._wheel.link(entry, ttl is None and not self._jitter)
        if self._lru:
            self._data.move_to_end(key)  # type: ignore[attr-defined]
        elif self._lfu:
            lfu_bump(entry)  # type: ignore[arg-type]
        now = self._clock()
        if now > self._timer_due:
            self._ensure_timer(now)
        return True

    async def get_or_set(
        self,
        key: Hashable,
        factory: Callable[[], Awaitable[T]] | Callable[[], T],
        ttl: float | None = None,
        *,
        refresh_ahead: float | None = None,
    ) -> T:
        """Return the value under ``key``, computing and storing it on a miss.

        Concurrent misses for one key call ``factory`` once (single flight): every caller
        gets its result, or its exception, which is not cached. A caller cancelled while
        waiting leaves the load running for the others; the load is cancelled when no one
        waits for it any more. A ``delete``/``set``/``clear`` of the key during the load
        keeps its result out of the cache (it is still returned to the waiters).

        Args:
            key: Any hashable key.
            factory: A sync or async callable returning the value.
            ttl: As for :meth:`set`.
            refresh_ahead: Seconds before expiry from which a hit also starts a background
                reload (single flight) while the old value is still served.

        Returns:
            The cached or computed value.

        Raises:
            CacheError: If :meth:`close` cancelled the load this call waited for.
            Exception: Whatever ``factory`` raised.
        """
        self._check_ttl(ttl)
        if refresh_ahead is not None:
            require_positive("refresh_ahead", refresh_ahead)
        entry = self._lookup(key)
        if entry is not None:
            expires = entry.expires
            now = self._clock() if expires is not None else 0.0
            if expires is None or expires > now:
                if self._lru:
                    self._data.move_to_end(key)  # type: ignore[attr-defined]
                elif self._lfu:
                    lfu_bump(entry)  # type: ignore[arg-type]
                self._hits += 1
                if (
                    refresh_ahead is not None
                    and expires is not None
                    and expires - now <= refresh_ahead
                    and key not in self._inflight
                ):
                    self._flights.start(key, self._load(key, factory, ttl))
                value: T = entry.value
                return value
            removed = self._expire_entry(entry)
            if removed is not None:
                await self._dispatch(removed)
        flight = self._inflight.get(key)
        if flight is None:
            self._misses += 1
            flight = self._flights.start(key, self._load(key, factory, ttl))
        else:
            self._coalesced += 1  # a miss that waits on another caller's load
        result: T = await self._flights.wait(key, flight)
        return result

    def transaction(self) -> CacheTransaction[T]:
        """Return an async context manager whose writes apply together at its exit.

        Writes inside the block are buffered (reads see them); at a normal exit they are
        applied in one step, with no other task running in between; if the block raises,
        they are discarded.

        Example:
            >>> async def move(cache: TTLCache[int]) -> None:
            ...     async with cache.transaction() as tx:
            ...         value = await tx.get("a", 0)
            ...         await tx.delete("a")
            ...         await tx.set("b", value)

        Returns:
            A new :class:`CacheTransaction`.
        """
        return CacheTransaction(self)

    # ------------------------------------------------------------------ maintenance

    def purge_expired(self) -> int:
        """Remove every expired entry now, synchronously.

        Listeners hear ``EXPIRED``; async ones run as tasks on the running loop (and are
        awaited or cancelled by :meth:`close`).

        Returns:
            How many entries were removed.
        """
        removed: list[_Removal] = []
        count = self._purge(self._clock(), removed, exact=True)
        if removed:
            self._dispatch_soon(removed)
        return count

    def stats(self) -> CacheStats:
        """Return a snapshot of the counters.

        Returns:
            A :class:`CacheStats`; ``items`` counts the entries held, including expired
            ones not purged yet.
        """
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            expirations=self._expirations,
            items=len(self._data),
            loads=self._loads,
            load_errors=self._load_errors,
            coalesced=self._coalesced,
            max_size=self._max_size,
        )

    get_stats = stats

    def reset_stats(self) -> None:
        """Set the hit, miss, eviction, expiration and load counters back to zero."""
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._loads = self._load_errors = self._coalesced = 0

    async def close(self) -> None:
        """Stop the background cleanup and cancel loads and listener tasks still running.

        Entries stay; the cache is usable afterwards (the cleanup restarts on the next
        write). Calling it twice is harmless.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_loop = None
        self._timer_due = -math.inf
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> TTLCache[T]:
        """Start the background cleanup on the running loop and return the cache."""
        self._start_timer()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the cache (see :meth:`close`)."""
        await self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(default_ttl={self._default_ttl!r}, "
            f"max_size={self._max_size!r}, eviction_policy={self._policy.value!r}, "
            f"items={len(self._data)})"
        )

    # ------------------------------------------------------------------ internals

    def _lookup(self, key: Hashable) -> _Entry | None:
        try:
            return self._data.get(key)
        except TypeError:
            raise _unhashable(key) from None

    def _check_ttl(self, ttl: float | None) -> None:
        if ttl is not None:
            require_positive("ttl", ttl)

    def _expiry(self, ttl: float | None, now: float | None = None) -> float | None:
        if ttl is None:
            ttl = self._default_ttl
            if ttl is None:
                return None
        else:
            kind = type(ttl)
            if (kind is not float and kind is not int) or not ttl > 0:
                require_positive("ttl", ttl)  # the right error for a bad one (nan included)
            if ttl == math.inf:
                return None
        if self._jitter:
            ttl *= 1.0 - self._jitter * random.random()
        return (self._clock() if now is None else now) + ttl

    def _store(self, key: Hashable, value: Any, ttl: float | None) -> list[_Removal] | None:
        """Insert or overwrite; return the removals to announce (None when none).

        The hot path of every write, so it is written out flat: one clock reading, no
        helper calls on the common paths.
        """
        now = self._clock()
        if now > self._timer_due:
            self._ensure_timer(now)
        uniform = ttl is None and not self._jitter  # expires in write order: the default list
        if uniform:
            ttl = self._default_ttl
            expires = None if ttl is None else now + ttl
        else:
            expires = self._expiry(ttl, now)
        data = self._data
        try:
            entry = data.get(key)
        except TypeError:
            raise _unhashable(key) from None
        removed: list[_Removal] | None = None
        if entry is not None:
            old = entry.expires
            if old is None or old > now:
                if self._notify:
                    removed = [(key, entry.value, _REPLACED)]
                if self._tagged:
                    self._untag(key)
                entry.value = value
                if old is not None:
                    prev = entry.wprev
                    nxt = entry.wnext
                    prev.wnext = nxt
                    nxt.wprev = prev
                    if prev is nxt and prev.expires is not None:
                        self._wheel.drop_bucket(prev)
                entry.expires = expires
                if expires is not None:
                    self._wheel.link(entry, uniform)
                if self._lru:
                    data.move_to_end(key)  # type: ignore[attr-defined]
                elif self._lfu:
                    lfu_bump(entry)  # type: ignore[arg-type]
                if self._inflight:
                    self._flights.mark_stale(key)
                return removed
            removed = self._expire_entry(entry)
        max_size = self._max_size
        if max_size is not None and len(data) >= max_size:
            # Make room: the policy's victim (an expired one counts as an expiration).
            if self._lfu:
                victim: _Entry = self._freq_root.next.head.next
                del data[victim.key]
                lfu_remove(victim)  # type: ignore[arg-type]
            else:
                victim = data.popitem(last=False)[1]  # type: ignore[call-arg]
            victim_expires = victim.expires
            if victim_expires is not None:
                prev = victim.wprev
                nxt = victim.wnext
                prev.wnext = nxt
                nxt.wprev = prev
                if prev is nxt and prev.expires is not None:
                    self._wheel.drop_bucket(prev)
            if victim_expires is not None and victim_expires <= now:
                self._expirations += 1
                reason = _EXPIRED
            else:
                self._evictions += 1
                reason = _CAPACITY
            if self._notify:
                if removed is None:
                    removed = []
                removed.append((victim.key, victim.value, reason))
            if self._tagged:
                self._untag(victim.key)
            # Recycle the victim as the new entry: nothing else refers to it, and reusing
            # it saves an allocation and a deallocation on every write to a full cache.
            entry = victim
        else:
            # object.__new__ plus three stores is a third cheaper than a Python __init__;
            # the links are set only when the entry joins a list (they are read only then).
            entry = _new_object(self._entry_class)
        entry.key = key
        entry.value = value
        entry.expires = expires
        data[key] = entry
        if expires is not None:
            self._wheel.link(entry, uniform)
        if self._lfu:
            lfu_insert(self._freq_root, entry)  # type: ignore[arg-type]
        if self._inflight:
            self._flights.mark_stale(key)
        return removed

    def _expire_entry(self, entry: _Entry) -> list[_Removal] | None:
        self._unlink(entry)
        self._expirations += 1
        if self._notify:
            return [(entry.key, entry.value, _EXPIRED)]
        return None

    def _unlink(self, entry: _Entry) -> None:
        """Remove ``entry`` from every structure."""
        del self._data[entry.key]
        if self._tagged:
            self._untag(entry.key)
        if entry.expires is not None:
            self._wheel.remove(entry)
        if self._lfu:
            lfu_remove(entry)  # type: ignore[arg-type]

    def _delete(self, key: Hashable, removed: list[_Removal]) -> bool:
        entry = self._lookup(key)
        if self._inflight:
            self._flights.mark_stale(key)
        if entry is None:
            return False
        expires = entry.expires
        if expires is not None and expires <= self._clock():
            out = self._expire_entry(entry)
            if out is not None:
                removed += out
            return False
        self._unlink(entry)
        if self._notify:
            removed.append((key, entry.value, _DELETED))
        return True

    def _clear(self, removed: list[_Removal]) -> None:
        data = self._data
        if self._notify:
            now = self._clock()
            for key, entry in data.items():
                expires = entry.expires
                if expires is None or expires > now:
                    removed.append((key, entry.value, _CLEARED))
        data.clear()
        self._tagged.clear()
        self._tag_keys.clear()
        self._wheel.clear()
        root = self._freq_root
        root.prev = root.next = root
        self._flights.mark_all_stale()

    def _purge(self, now: float, removed: list[_Removal], *, exact: bool) -> int:
        """Drop the expired entries (see :meth:`ExpiryWheel.pop_expired`); return how many."""
        expired = self._wheel.pop_expired(now, exact=exact)
        data = self._data
        lfu = self._lfu
        notify = self._notify
        tagged = self._tagged
        for entry in expired:
            del data[entry.key]
            if tagged:
                self._untag(entry.key)
            if lfu:
                lfu_remove(entry)  # type: ignore[arg-type]
            if notify:
                removed.append((entry.key, entry.value, _EXPIRED))
        count = len(expired)
        self._expirations += count
        return count

    # --- tags

    def _tag(self, key: Hashable, tags: tuple[str, ...]) -> None:
        """Index a just-stored ``key`` under ``tags`` (the store dropped its old tags)."""
        self._tagged[key] = tags
        index = self._tag_keys
        for tag in tags:
            members = index.get(tag)
            if members is None:
                index[tag] = {key}
            else:
                members.add(key)

    def _untag(self, key: Hashable) -> None:
        """Drop ``key`` from the tag index, and each tag left with no key."""
        tags = self._tagged.pop(key, None)
        if tags is None:
            return
        index = self._tag_keys
        for tag in tags:
            members = index[tag]
            members.discard(key)
            if not members:
                del index[tag]

    # --- loads

    async def _load(
        self,
        key: Hashable,
        factory: Callable[[], Awaitable[T]] | Callable[[], T],
        ttl: float | None,
    ) -> T:
        self._loads += 1
        finish = self._flights.finish
        try:
            result = factory()
            value: T = await result if inspect.isawaitable(result) else result
        except (asyncio.CancelledError, Uncached):
            finish(key)
            raise
        except BaseException:
            self._load_errors += 1
            finish(key)
            raise
        flight = finish(key)
        if flight is None or not flight.stale:
            removed = self._store(key, value, ttl)
            if removed is not None:
                await self._dispatch(removed)
        return value

    # --- listeners

    def _call_listeners(self, key: Hashable, value: Any, reason: EvictionReason) -> list[Any]:
        return call_listeners(self._listeners, key, value, reason)

    async def _dispatch(self, removed: list[_Removal]) -> None:
        for key, value, reason in removed:
            # Awaited one removal at a time, so listeners hear removals in order.
            await await_all(self._call_listeners(key, value, reason))

    def _dispatch_soon(self, removed: list[_Removal]) -> None:
        """Announce removals from synchronous code: awaitables run in one task, in order."""
        pending: list[Any] = []
        for key, value, reason in removed:
            pending += self._call_listeners(key, value, reason)
        if not pending:
            return
        try:
            loop = _get_running_loop()
        except RuntimeError:
            close_all(pending)
            logger.warning(
                "%d removals not announced to async listeners: no running event loop",
                len(pending),
            )
            return
        task = loop.create_task(await_all(pending))
        # A task cancelled before its first step never runs its body: close what it did not
        # await, so no coroutine is left un-awaited (closing a finished one does nothing).
        task.add_done_callback(lambda _: close_all(pending))
        self._track(task)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- background cleanup

    def _ensure_timer(self, now: float) -> None:
        """Make sure the cleanup is scheduled on the running loop.

        ``asyncio.get_running_loop()`` costs about as much as the rest of a write, so writes
        do not call it each time: they compare the time with ``_timer_due``, two cleanup
        intervals after the last check or firing (a live timer keeps moving it). A write
        past it means the cleanup never started, was closed, or belongs to an event loop
        that is gone (a cache reused under a new ``asyncio.run``); it is checked here.
        """
        try:
            loop = _get_running_loop()
        except RuntimeError:  # a synchronous caller: nothing to schedule on
            return
        if loop is not self._timer_loop or (
            self._timer is None and self._cleanup_interval is not None
        ):
            self._start_timer()
        interval = self._cleanup_interval
        self._timer_due = math.inf if interval is None else now + 2 * interval

    def _start_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = _get_running_loop()
        self._timer_loop = loop
        interval = self._cleanup_interval
        if interval is not None:
            self._timer = loop.call_later(interval, _timer_fired, weakref.ref(self))
            self._timer_due = self._clock() + 2 * interval
        else:
            self._timer_due = math.inf

    def _on_timer(self) -> None:
        self._timer = None
        loop = self._timer_loop
        if loop is None:  # pragma: no cover - closed between the firing and this call
            return
        removed: list[_Removal] = []
        self._purge(self._clock(), removed, exact=True)
        if removed:
            self._dispatch_soon(removed)
        interval = self._cleanup_interval
        assert interval is not None
        self._timer = loop.call_later(interval, _timer_fired, weakref.ref(self))
        self._timer_due = self._clock() + 2 * interval


class TTLLRUCache(TTLCache[T]):
    """A :class:`TTLCache` with the LRU policy (the default), spelled out."""

    __slots__ = ()

    def __init__(
        self,
        default_ttl: float | None = 300.0,
        max_size: int | None = None,
        cleanup_interval: float | None = 60.0,
        on_evicted: Callable[[Hashable, T], Any] | None = None,
        *,
        on_removed: Callable[[Hashable, T, EvictionReason], Any] | None = None,
        jitter: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(
            default_ttl,
            max_size,
            cleanup_interval,
            EvictionPolicy.LRU,
            on_evicted,
            on_removed=on_removed,
            jitter=jitter,
            clock=clock,
        )


class TTLLFUCache(TTLCache[T]):
    """A :class:`TTLCache` with the LFU policy."""

    __slots__ = ()

    def __init__(
        self,
        default_ttl: float | None = 300.0,
        max_size: int | None = None,
        cleanup_interval: float | None = 60.0,
        on_evicted: Callable[[Hashable, T], Any] | None = None,
        *,
        on_removed: Callable[[Hashable, T, EvictionReason], Any] | None = None,
        jitter: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(
            default_ttl,
            max_size,
            cleanup_interval,
            EvictionPolicy.LFU,
            on_evicted,
            on_removed=on_removed,
            jitter=jitter,
            clock=clock,
        )


class TTLFIFOCache(TTLCache[T]):
    """A :class:`TTLCache` with the FIFO policy."""

    __slots__ = ()

    def __init__(
        self,
        default_ttl: float | None = 300.0,
        max_size: int | None = None,
        cleanup_interval: float | None = 60.0,
        on_evicted: Callable[[Hashable, T], Any] | None = None,
        *,
        on_removed: Callable[[Hashable, T, EvictionReason], Any] | None = None,
        jitter: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(
            default_ttl,
            max_size,
            cleanup_interval,
            EvictionPolicy.FIFO,
            on_evicted,
            on_removed=on_removed,
            jitter=jitter,
            clock=clock,
        )
