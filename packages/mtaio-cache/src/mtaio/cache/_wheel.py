"""The expiry bookkeeping of :class:`~mtaio.cache.TTLCache`: entries, the default list, a wheel.

Entries written with the default ttl (and no jitter) expire in the order they are written,
so they sit in one intrusive list (``dlist``) purged from its head. Any other expiry goes
into a timing wheel: entries that expire in the same second share a bucket, an intrusive
circular list reached through ``buckets[second]``; a heap holds the bucket seconds. The
purge walks the list head and pops the buckets whose second has passed, so its work is
proportional to what expired, never to the cache size. A bucket is dropped as soon as its
last entry leaves, so the bookkeeping never outgrows the live entries.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable
from typing import Any

from mtaio.exceptions import ConfigurationTypeError

__all__ = ("MISSING", "Entry", "ExpiryWheel", "new_bucket", "unhashable")

_floor = math.floor
_heappush = heapq.heappush
_heappop = heapq.heappop

MISSING: Any = object()  # "no entry", distinct from a stored None


def unhashable(key: object) -> ConfigurationTypeError:
    """The error for a key that cannot be a dict key."""
    return ConfigurationTypeError(f"key must be hashable, got {type(key).__name__} {key!r}")


class Entry:
    """One cached value. ``wprev``/``wnext`` link it into its expiry list or bucket."""

    __slots__ = ("expires", "key", "value", "wnext", "wprev")

    def __init__(self, key: Hashable, value: Any, expires: float | None) -> None:
        self.key = key
        self.value = value
        self.expires = expires
        self.wprev: Any = None
        self.wnext: Any = None


def new_bucket(second: int | None = None) -> Entry:
    """A list sentinel; a bucket's keeps its second in ``expires`` (the default list's None).

    Whoever empties a bucket can so find and drop it (see :meth:`ExpiryWheel.drop_bucket`).
    """
    sentinel = Entry(None, None, second)
    sentinel.wprev = sentinel.wnext = sentinel
    return sentinel


class ExpiryWheel:
    """Where every entry that expires is linked, found again when its time comes.

    The cache's hot paths inline the unlinking (``prev.wnext = nxt`` ...) and then call
    :meth:`drop_bucket` when ``prev is nxt and prev.expires is not None``: a circular list
    whose neighbours are one node holds only its sentinel, and only bucket sentinels carry
    a second.
    """

    __slots__ = ("buckets", "dlist", "heap")

    def __init__(self) -> None:
        self.buckets: dict[int, Entry] = {}
        self.dlist = new_bucket()
        self.heap: list[int] = []

    def link(self, entry: Entry, uniform: bool) -> None:
        """Link ``entry`` at the tail of the default list (``uniform``) or into its bucket."""
        if uniform:
            # Entries given the default ttl, without jitter, expire in the order they are
            # written (the clock is monotonic): one list, appended at the tail, purged from
            # the head, needs no bucket lookup. It is the common case and the hot path.
            bucket = self.dlist
        else:
            second = _floor(entry.expires)  # type: ignore[arg-type]
            found = self.buckets.get(second)
            if found is None:
                found = self.buckets[second] = new_bucket(second)
                _heappush(self.heap, second)
            bucket = found
        last = bucket.wprev
        last.wnext = entry
        entry.wprev = last
        entry.wnext = bucket
        bucket.wprev = entry

    def remove(self, entry: Entry) -> None:
        """Unlink ``entry`` (which has an expiry), dropping its bucket if it empties."""
        prev = entry.wprev
        nxt = entry.wnext
        prev.wnext = nxt
        nxt.wprev = prev
        entry.wprev = entry.wnext = None
        if prev is nxt and prev.expires is not None:
            self.drop_bucket(prev)

    def drop_bucket(self, sentinel: Entry) -> None:
        """Forget a bucket its last entry just left, so memory follows the live entries.

        Without this, a key rewritten with ever new expiry seconds would leave one empty
        bucket (and one heap slot) per second until that second passed: a remote
        ``SET k v EX n`` loop could grow the process without bound. The bucket's second
        stays in the heap (removing it is O(n)); the purge skips seconds that have no
        bucket, and the heap is rebuilt from the live buckets once stale seconds outnumber
        them, which keeps it within twice the live buckets at amortised O(1) per removal.
        """
        buckets = self.buckets
        second: Any = sentinel.expires  # an int: only bucket sentinels come here
        if buckets.get(second) is sentinel:
            del buckets[second]
            heap = self.heap
            if len(heap) > 2 * len(buckets) + 64:
                heap[:] = sorted(buckets)  # a sorted list is a heap

    def pop_expired(self, now: float, *, exact: bool) -> list[Entry]:
        """Unlink and return the entries expired at ``now``, soonest first.

        First the head of the default list (sorted by expiry) up to the first live entry,
        then the buckets whose second has passed (all expired), then, if ``exact``, the
        expired entries of the current second's bucket.
        """
        out: list[Entry] = []
        heap = self.heap
        buckets = self.buckets
        current = _floor(now)
        dlist = self.dlist
        entry = dlist.wnext
        while entry is not dlist and entry.expires <= now:
            nxt = entry.wnext
            entry.wprev = entry.wnext = None
            out.append(entry)
            entry = nxt
        entry.wprev = dlist
        dlist.wnext = entry
        while heap and heap[0] < current:
            bucket = buckets.pop(_heappop(heap), None)
            if bucket is None:  # dropped when it emptied (see drop_bucket)
                continue
            entry = bucket.wnext
            while entry is not bucket:
                nxt = entry.wnext
                entry.wprev = entry.wnext = None
                out.append(entry)
                entry = nxt
        if exact and heap and heap[0] == current and current in buckets:
            bucket = buckets[current]
            entry = bucket.wnext
            while entry is not bucket:
                nxt = entry.wnext
                if entry.expires <= now:
                    self.remove(entry)
                    out.append(entry)
                entry = nxt
        return out

    def clear(self) -> None:
        """Forget every entry."""
        self.buckets.clear()
        dlist = self.dlist
        dlist.wprev = dlist.wnext = dlist
        self.heap.clear()
