"""The statistics snapshot of a local cache."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("CacheStats",)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a :class:`~mtaio.cache.TTLCache`'s counters, from ``stats()``.

    Attributes:
        hits: Lookups that found a live entry.
        misses: Lookups that found nothing (or only an expired entry).
        evictions: Entries dropped to make room (capacity evictions).
        expirations: Entries dropped because their time to live ran out.
        items: Entries held at the time of the snapshot.
        loads: Factory calls made by ``get_or_set`` and the ``cached`` decorator.
        load_errors: Factory calls that raised.
        max_size: The capacity, or ``None`` for an unbounded cache.
        coalesced: Misses of ``get_or_set`` (and ``cached``) that waited for a load another
            caller had started (single flight) instead of loading: 100 concurrent callers
            of a cold key count 1 miss, 1 load and 99 coalesced. Not counted in
            ``misses``, ``hits`` or ``hit_rate``.
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0
    items: int = 0
    loads: int = 0
    load_errors: int = 0
    max_size: int | None = None
    coalesced: int = 0

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``, or 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    @property
    def requests(self) -> int:
        """``hits + misses``."""
        return self.hits + self.misses
