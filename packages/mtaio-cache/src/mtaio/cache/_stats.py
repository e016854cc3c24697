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
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0
    items: int = 0
    loads: int = 0
    load_errors: int = 0
    max_size: int | None = None

    @property
    def hit_rate(self) -> float:
        """``hits / (hits + misses)``, or 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    @property
    def requests(self) -> int:
        """``hits + misses``."""
        return self.hits + self.misses
