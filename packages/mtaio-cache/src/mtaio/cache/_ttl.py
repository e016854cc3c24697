"""TTLCache: an asyncio cache with per-entry time to live and O(1) LRU/LFU/FIFO eviction.

Data layout (chosen for speed and bytes per entry, see the package README):

* LRU and FIFO keep one ``OrderedDict`` key -> ``_Entry``; its C linked list gives O(1)
  ``move_to_end`` (LRU recency) and ``popitem(last=False)`` (the victim).
* LFU keeps a plain ``dict`` and a doubly linked list of frequency nodes, each holding a
  circular list of its entries (the O(1) LFU of Shah, Mitra and Matani, 2010).
* Expiry: entries written with the default ttl (and no jitter) expire in the order they
  are written, so they sit in one intrusive list (``_dlist``) purged from its head. Any
  other expiry goes into a timing wheel: entries that expire in the same second share a
  bucket, an intrusive circular list reached through ``_buckets[second]``; a heap holds the
  bucket seconds. The cleanup walks the list head and pops the buckets whose second has
  passed, so its work is proportional to what expired, never to the cache size.

Every public operation finishes its bookkeeping synchronously, before any ``await``, so
there is no lock: eviction listeners run after the cache is consistent again and may use it.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import logging
import math
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from mtaio.exceptions import (
    CacheError,
    ConfigurationError,
    ConfigurationTypeError,
    require_callable,
    require_positive,
    require_positive_int,
)
from mtaio.typing import Clock

from ._policies import EvictionPolicy, EvictionReason
from ._stats import CacheStats

__all__ = (
    "CacheTransaction",
    "TTLCache",
    "TTLFIFOCache",
    "TTLLFUCache",
    "TTLLRUCache",
)

T = TypeVar("T")
D = TypeVar("D")

logger = logging.getLogger("mtaio.cache")

_floor = math.floor
_heappush = heapq.heappush
_heappop = heapq.heappop
_get_running_loop = asyncio.get_running_loop
_new_object = object.__new__

_EXPIRED = EvictionReason.EXPIRED
_CAPACITY = EvictionReason.CAPACITY
_DELETED = EvictionReason.DELETED
_REPLACED = EvictionReason.REPLACED
_CLEARED = EvictionReason.CLEARED

_MISSING: Any = object()  # "no entry", distinct from a stored None

#: One removal, as handed to listeners: (key, value, reason).
_Removal = tuple[Hashable, Any, EvictionReason]


class _Entry:
    """One cached value. ``wprev``/``wnext`` link it into its expiry bucket."""

    __slots__ = ("expires", "key", "value", "wnext", "wprev")

    def __init__(self, key: Hashable, value: Any, expires: float | None) -> None:
        self.key = key
        self.value = value
        self.expires = expires
        self.wprev: Any = None
        self.wnext: Any = None


class _LFUEntry(_Entry):
    """An entry of an LFU cache: also linked into its frequency node's list."""

    __slots__ = ("next", "node", "prev")

    def __init__(self, key: Hashable, value: Any, expires: float | None) -> None:
        super().__init__(key, value, expires)
        self.node: Any = None
        self.prev: Any = None
        self.next: Any = None


class _FreqNode:
    """The entries used exactly ``freq`` times, least recently used first."""

    __slots__ = ("freq", "head", "next", "prev")

    def __init__(self, freq: int) -> None:
        self.freq = freq
        head = _LFUEntry(None, None, None)
        head.prev = head.next = head
        self.head = head
        self.prev: Any = self
        self.next: Any = self


def _new_bucket(second: int | None = None) -> _Entry:
    # A bucket's sentinel keeps its second in ``expires`` (the default list's is None), so
    # whoever empties a bucket can find and drop it (see TTLCache._drop_bucket).
    sentinel = _Entry(None, None, second)
    sentinel.wprev = sentinel.wnext = sentinel
    return sentinel


class _Listener:
    __slots__ = ("callback", "simple")

    def __init__(self, callback: Callable[..., Any], simple: bool) -> None:
        self.callback = callback
        self.simple = simple


class _Flight:
    """One in-flight load of a key by ``get_or_set``: the task and how many await it."""

    __slots__ = ("stale", "task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.waiters = 0
        self.stale = False  # the key was written or deleted meanwhile: do not store the result


def _timer_fired(ref: weakref.ref[TTLCache[Any]]) -> None:
    # A weak reference: a forgotten cache is collected, and its timer then does nothing.
    cache = ref()
    if cache is not None:
        cache._on_timer()


def _unhashable(key: object) -> ConfigurationTypeError:
    return ConfigurationTypeError(f"key must be hashable, got {type(key).__name__} {key!r}")


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
        "_buckets",
        "_cleanup_interval",
        "_clock",
        "_data",
        "_default_ttl",
        "_dlist",
        "_entry_class",
        "_evictions",
        "_expirations",
        "_freq_root",
        "_heap",
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
        "_tasks",
        "_timer",
        "_timer_due",
        "_timer_loop",
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
        self._entry_class: type[_Entry] = _LFUEntry if self._lfu else _Entry
        self._freq_root = _FreqNode(0)
        self._buckets: dict[int, _Entry] = {}
        self._dlist = _new_bucket()
        self._heap: list[int] = []
        self._listeners: list[_Listener] = []
        self._notify = False
        self._inflight: dict[Hashable, _Flight] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        # When a write should next check that the cleanup runs on the current loop (see
        # _ensure_timer): -inf makes the first write check.
        self._timer_due = -math.inf
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._loads = self._load_errors = 0
        if on_evicted is not None:
            self._listeners.append(_Listener(require_callable("on_evicted", on_evicted), True))
        if on_removed is not None:
            self._listeners.append(_Listener(require_callable("on_removed", on_removed), False))
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
        self._listeners.append(_Listener(require_callable("callback", callback), False))
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
            self._lfu_bump(entry)  # type: ignore[arg-type]
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
        keys: list[Hashable] = []
        node = self._freq_root.next
        while node is not self._freq_root:
            head = node.head
            entry = head.next
            while entry is not head:
                keys.append(entry.key)
                entry = entry.next
            node = node.next
        return keys

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

    async def set(self, key: Hashable, value: T, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``.

        Args:
            key: Any hashable key.
            value: The value.
            ttl: Seconds it lives; ``None`` uses ``default_ttl``; ``math.inf`` never
                expires. A ttl of zero or less is an error, never "the default".

        Raises:
            ConfigurationError: If ``ttl`` is not positive.
            ConfigurationTypeError: If ``ttl`` is not a number or ``key`` is not hashable.
        """
        data = self._data
        if ttl is not None or self._jitter or self._lfu:
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
                            self._drop_bucket(prev)
                    if victim_expires is not None and victim_expires <= now:
                        self._expirations += 1
                        reason = _EXPIRED
                    else:
                        self._evictions += 1
                        reason = _CAPACITY
                    if self._notify:
                        removed = [(entry.key, entry.value, reason)]
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
                    self._mark_stale(key)
        if removed is not None:
            await self._dispatch(removed)

    async def set_many(self, items: Mapping[Hashable, T], ttl: float | None = None) -> None:
        """Store every item of ``items`` (all with the same ``ttl``).

        Args:
            items: Keys and values.
            ttl: As for :meth:`set`.
        """
        self._check_ttl(ttl)
        removed: list[_Removal] = []
        for key, value in items.items():
            out = self._store(key, value, ttl)
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
            self._wheel_remove(entry)
        entry.expires = expires
        if expires is not None:
            self._link_expiry(entry, ttl is None and not self._jitter)
        if self._lru:
            self._data.move_to_end(key)  # type: ignore[attr-defined]
        elif self._lfu:
            self._lfu_bump(entry)  # type: ignore[arg-type]
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
                    self._lfu_bump(entry)  # type: ignore[arg-type]
                self._hits += 1
                if (
                    refresh_ahead is not None
                    and expires is not None
                    and expires - now <= refresh_ahead
                    and key not in self._inflight
                ):
                    self._start_load(key, factory, ttl)
                value: T = entry.value
                return value
            removed = self._expire_entry(entry)
            if removed is not None:
                await self._dispatch(removed)
        self._misses += 1
        flight = self._inflight.get(key)
        if flight is None:
            flight = self._start_load(key, factory, ttl)
        flight.waiters += 1
        task = flight.task
        try:
            result: T = await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise CacheError(f"the load of key {key!r} was cancelled (cache closed)") from None
            if flight.waiters == 1 and not task.done():
                task.cancel()  # no one else waits: stop the load
            raise
        finally:
            flight.waiters -= 1
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
            max_size=self._max_size,
        )

    get_stats = stats

    def reset_stats(self) -> None:
        """Set the hit, miss, eviction, expiration and load counters back to zero."""
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._loads = self._load_errors = 0

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
                entry.value = value
                if old is not None:
                    prev = entry.wprev
                    nxt = entry.wnext
                    prev.wnext = nxt
                    nxt.wprev = prev
                    if prev is nxt and prev.expires is not None:
                        self._drop_bucket(prev)
                entry.expires = expires
                if expires is not None:
                    self._link_expiry(entry, uniform)
                if self._lru:
                    data.move_to_end(key)  # type: ignore[attr-defined]
                elif self._lfu:
                    self._lfu_bump(entry)  # type: ignore[arg-type]
                if self._inflight:
                    self._mark_stale(key)
                return removed
            removed = self._expire_entry(entry)
        max_size = self._max_size
        if max_size is not None and len(data) >= max_size:
            # Make room: the policy's victim (an expired one counts as an expiration).
            if self._lfu:
                victim: _Entry = self._freq_root.next.head.next
                del data[victim.key]
                self._lfu_remove(victim)  # type: ignore[arg-type]
            else:
                victim = data.popitem(last=False)[1]  # type: ignore[call-arg]
            victim_expires = victim.expires
            if victim_expires is not None:
                prev = victim.wprev
                nxt = victim.wnext
                prev.wnext = nxt
                nxt.wprev = prev
                if prev is nxt and prev.expires is not None:
                    self._drop_bucket(prev)
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
            self._link_expiry(entry, uniform)
        if self._lfu:
            self._lfu_insert(entry)  # type: ignore[arg-type]
        if self._inflight:
            self._mark_stale(key)
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
        if entry.expires is not None:
            self._wheel_remove(entry)
        if self._lfu:
            self._lfu_remove(entry)  # type: ignore[arg-type]

    def _delete(self, key: Hashable, removed: list[_Removal]) -> bool:
        entry = self._lookup(key)
        if self._inflight:
            self._mark_stale(key)
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
        self._buckets.clear()
        dlist = self._dlist
        dlist.wprev = dlist.wnext = dlist
        self._heap.clear()
        root = self._freq_root
        root.prev = root.next = root
        for flight in self._inflight.values():
            flight.stale = True

    def _mark_stale(self, key: Hashable) -> None:
        flight = self._inflight.get(key)
        if flight is not None:
            flight.stale = True

    # --- the expiry wheel

    def _link_expiry(self, entry: _Entry, uniform: bool) -> None:
        """Link ``entry`` at the tail of the default list (``uniform``) or into the wheel."""
        if uniform:
            # Entries given the default ttl, without jitter, expire in the order they are
            # written (the clock is monotonic): one list, appended at the tail, purged from
            # the head, needs no bucket lookup. It is the common case and the hot path.
            bucket = self._dlist
        else:
            second = _floor(entry.expires)  # type: ignore[arg-type]
            found = self._buckets.get(second)
            if found is None:
                found = self._buckets[second] = _new_bucket(second)
                _heappush(self._heap, second)
            bucket = found
        last = bucket.wprev
        last.wnext = entry
        entry.wprev = last
        entry.wnext = bucket
        bucket.wprev = entry

    def _wheel_remove(self, entry: _Entry) -> None:
        prev = entry.wprev
        nxt = entry.wnext
        prev.wnext = nxt
        nxt.wprev = prev
        entry.wprev = entry.wnext = None
        if prev is nxt and prev.expires is not None:
            self._drop_bucket(prev)

    def _drop_bucket(self, sentinel: _Entry) -> None:
        """Forget a bucket its last entry just left, so memory follows the live entries.

        A circular list whose neighbours are one node holds only its sentinel. Without
        this, a key rewritten with ever new expiry seconds would leave one empty bucket
        (and one heap slot) per second until that second passed: a remote ``SET k v EX n``
        loop could grow the process without bound. The bucket's second stays in the heap
        (removing it is O(n)); the purge skips seconds that have no bucket, and the heap is
        rebuilt from the live buckets once stale seconds outnumber them, which keeps it
        within twice the live buckets at amortised O(1) per removal.
        """
        buckets = self._buckets
        second = sentinel.expires
        if buckets.get(second) is sentinel:  # type: ignore[arg-type]
            del buckets[second]  # type: ignore[arg-type]
            heap = self._heap
            if len(heap) > 2 * len(buckets) + 64:
                heap[:] = sorted(buckets)  # a sorted list is a heap

    def _purge(self, now: float, removed: list[_Removal], *, exact: bool) -> int:
        """Drop expired entries and return how many.

        First the head of the default list (sorted by expiry) up to the first live entry,
        then the buckets whose second has passed (all expired), then, if ``exact``, the
        expired entries of the current second's bucket.
        """
        heap = self._heap
        buckets = self._buckets
        data = self._data
        lfu = self._lfu
        notify = self._notify
        current = _floor(now)
        count = 0
        dlist = self._dlist
        entry = dlist.wnext
        while entry is not dlist and entry.expires <= now:
            nxt = entry.wnext
            entry.wprev = entry.wnext = None
            del data[entry.key]
            if lfu:
                self._lfu_remove(entry)
            if notify:
                removed.append((entry.key, entry.value, _EXPIRED))
            count += 1
            entry = nxt
        entry.wprev = dlist
        dlist.wnext = entry
        while heap and heap[0] < current:
            bucket = buckets.pop(_heappop(heap), None)
            if bucket is None:  # dropped when it emptied (see _drop_bucket)
                continue
            entry = bucket.wnext
            while entry is not bucket:
                nxt = entry.wnext
                entry.wprev = entry.wnext = None
                del data[entry.key]
                if lfu:
                    self._lfu_remove(entry)
                if notify:
                    removed.append((entry.key, entry.value, _EXPIRED))
                count += 1
                entry = nxt
        if exact and heap and heap[0] == current and current in buckets:
            bucket = buckets[current]
            entry = bucket.wnext
            while entry is not bucket:
                nxt = entry.wnext
                if entry.expires <= now:
                    self._wheel_remove(entry)
                    del data[entry.key]
                    if lfu:
                        self._lfu_remove(entry)
                    if notify:
                        removed.append((entry.key, entry.value, _EXPIRED))
                    count += 1
                entry = nxt
        self._expirations += count
        return count

    # --- LFU frequency lists

    def _lfu_insert(self, entry: _LFUEntry) -> None:
        root = self._freq_root
        node = root.next
        if node.freq != 1:
            node = _FreqNode(1)
            node.prev = root
            node.next = root.next
            root.next.prev = node
            root.next = node
        self._lfu_append(node, entry)

    @staticmethod
    def _lfu_append(node: _FreqNode, entry: _LFUEntry) -> None:
        head = node.head
        last = head.prev
        last.next = entry
        entry.prev = last
        entry.next = head
        head.prev = entry
        entry.node = node

    def _lfu_bump(self, entry: _LFUEntry) -> None:
        node = entry.node
        nxt = node.next
        freq = node.freq + 1
        if nxt.freq != freq:  # the root has freq 0, never equal
            new = _FreqNode(freq)
            new.prev = node
            new.next = nxt
            nxt.prev = new
            node.next = new
            nxt = new
        self._lfu_remove(entry)
        self._lfu_append(nxt, entry)

    @staticmethod
    def _lfu_remove(entry: _LFUEntry) -> None:
        prev = entry.prev
        nxt = entry.next
        prev.next = nxt
        nxt.prev = prev
        entry.prev = entry.next = None
        node = entry.node
        entry.node = None
        if node.head.next is node.head:  # the node is empty: unlink it
            node.prev.next = node.next
            node.next.prev = node.prev

    # --- listeners

    def _call_listeners(self, key: Hashable, value: Any, reason: EvictionReason) -> list[Any]:
        """Call every listener for one removal; return the awaitables they gave back."""
        pending: list[Any] = []
        for listener in tuple(self._listeners):
            if listener.simple and reason is not _EXPIRED and reason is not _CAPACITY:
                continue
            try:
                if listener.simple:
                    result = listener.callback(key, value)
                else:
                    result = listener.callback(key, value, reason)
            except Exception:
                logger.exception("cache listener %r failed for key %r", listener.callback, key)
                continue
            # Async listeners, and sync ones returning an awaitable (a lambda wrapping an
            # async call): both are awaited, never left as un-awaited coroutines.
            if inspect.isawaitable(result):
                pending.append((listener.callback, key, result))
        return pending

    async def _dispatch(self, removed: list[_Removal]) -> None:
        for key, value, reason in removed:
            # Awaited one removal at a time, so listeners hear removals in order.
            await _await_all(self._call_listeners(key, value, reason))

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
            _close_all(pending)
            logger.warning(
                "%d removals not announced to async listeners: no running event loop",
                len(pending),
            )
            return
        task = loop.create_task(_await_all(pending))
        # A task cancelled before its first step never runs its body: close what it did not
        # await, so no coroutine is left un-awaited (closing a finished one does nothing).
        task.add_done_callback(lambda _: _close_all(pending))
        self._track(task)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- loads

    def _start_load(
        self,
        key: Hashable,
        factory: Callable[[], Awaitable[T]] | Callable[[], T],
        ttl: float | None,
    ) -> _Flight:
        task = _get_running_loop().create_task(self._load(key, factory, ttl))
        flight = _Flight(task)
        self._inflight[key] = flight
        inflight = self._inflight

        def forget(_: asyncio.Task[Any]) -> None:
            # A task cancelled before its first step never runs _load's cleanup.
            if inflight.get(key) is flight:
                del inflight[key]

        self._track(task)
        task.add_done_callback(forget)
        task.add_done_callback(_retrieve)
        return flight

    async def _load(
        self,
        key: Hashable,
        factory: Callable[[], Awaitable[T]] | Callable[[], T],
        ttl: float | None,
    ) -> T:
        self._loads += 1
        try:
            result = factory()
            value: T = await result if inspect.isawaitable(result) else result
        except asyncio.CancelledError:
            self._drop_flight(key)
            raise
        except BaseException:
            self._load_errors += 1
            self._drop_flight(key)
            raise
        flight = self._drop_flight(key)
        if flight is None or not flight.stale:
            removed = self._store(key, value, ttl)
            if removed is not None:
                await self._dispatch(removed)
        return value

    def _drop_flight(self, key: Hashable) -> _Flight | None:
        flight = self._inflight.get(key)
        if flight is not None and flight.task is asyncio.current_task():
            del self._inflight[key]
            return flight
        return None

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


async def _await_all(pending: list[Any]) -> None:
    for callback, key, awaitable in pending:
        try:
            await awaitable
        except Exception:
            logger.exception("cache listener %r failed for key %r", callback, key)


def _close_all(pending: list[Any]) -> None:
    for _, _, awaitable in pending:
        if inspect.iscoroutine(awaitable):
            awaitable.close()


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The waiters see the exception; this keeps asyncio from logging it as never retrieved
    # when every waiter gave up first.
    if not task.cancelled():
        task.exception()


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


_DELETE: Any = object()


class CacheTransaction(Generic[T]):
    """Buffered writes to a :class:`TTLCache`, applied together at the block's exit.

    Get one from :meth:`TTLCache.transaction`. Reads see the buffered writes first.
    """

    __slots__ = ("_cache", "_done", "_ops")

    def __init__(self, cache: TTLCache[T]) -> None:
        self._cache = cache
        self._ops: dict[Hashable, tuple[Any, float | None]] = {}
        self._done = False

    @overload
    async def get(self, key: Hashable) -> T | None: ...
    @overload
    async def get(self, key: Hashable, default: D) -> T | D: ...
    async def get(self, key: Hashable, default: Any = None) -> Any:
        """Return the buffered value of ``key``, else the cache's (see :meth:`TTLCache.get`)."""
        try:
            op = self._ops.get(key)
        except TypeError:
            raise _unhashable(key) from None
        if op is not None:
            return default if op[0] is _DELETE else op[0]
        return await self._cache.get(key, default)

    async def set(self, key: Hashable, value: T, ttl: float | None = None) -> None:
        """Buffer a :meth:`TTLCache.set`; the ttl counts from the commit."""
        self._check_open()
        self._cache._check_ttl(ttl)
        try:
            self._ops[key] = (value, ttl)
        except TypeError:
            raise _unhashable(key) from None

    async def delete(self, key: Hashable) -> bool:
        """Buffer a :meth:`TTLCache.delete`.

        Returns:
            Whether the key holds a value as this transaction sees it.
        """
        self._check_open()
        try:
            op = self._ops.get(key)
        except TypeError:
            raise _unhashable(key) from None
        existed = op[0] is not _DELETE if op is not None else key in self._cache
        self._ops[key] = (_DELETE, None)
        return existed

    def _check_open(self) -> None:
        if self._done:
            raise CacheError("this transaction is already committed or rolled back")

    async def __aenter__(self) -> CacheTransaction[T]:
        """Start buffering."""
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Apply the buffered writes, or drop them if the block raised."""
        self._done = True
        ops, self._ops = self._ops, {}
        if exc_type is not None or not ops:
            return
        cache = self._cache
        removed: list[_Removal] = []
        # Every ttl was checked when buffered: nothing below raises half way.
        for key, (value, ttl) in ops.items():
            if value is _DELETE:
                cache._delete(key, removed)
            else:
                out = cache._store(key, value, ttl)
                if out is not None:
                    removed += out
        if removed:
            await cache._dispatch(removed)
