"""The async cache protocol that every mtaio cache implements and ``cached`` accepts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

__all__ = ("AsyncCache",)

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


@runtime_checkable
class AsyncCache(Protocol[K, V]):
    """An async cache of ``V`` values under ``K`` keys.

    :class:`~mtaio.cache.TTLCache` (``AsyncCache[Hashable, V]``),
    :class:`~mtaio.cache.DistributedCache` (``AsyncCache[str, V]``) and
    :class:`~mtaio.cache.LayeredCache` implement it, and :func:`~mtaio.cache.cached`
    accepts any object that does, a class of your own included. ``isinstance(obj,
    AsyncCache)`` checks that the methods are there (not their signatures).

    Example:
        >>> async def warm(cache: AsyncCache[str, int]) -> int:
        ...     await cache.set("answer", 42, ttl=60.0, tags=("demo",))
        ...     return await cache.get_or_set("answer", lambda: 0)

    Methods that take a ``ttl`` read it as seconds; ``None`` means the cache's default.
    ``tags`` name groups of keys that an ``invalidate_tags`` of the cache removes together.
    """

    @overload
    async def get(self, key: K) -> V | None: ...
    @overload
    async def get(self, key: K, default: D) -> V | D: ...
    async def get(self, key: K, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` on a miss."""

    async def set(
        self, key: K, value: V, ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, in the groups ``tags``."""

    async def delete(self, key: K) -> bool:
        """Remove ``key``; return whether a value was there."""

    async def get_or_set(
        self,
        key: K,
        factory: Callable[[], Awaitable[V]] | Callable[[], V],
        ttl: float | None = None,
        *,
        refresh_ahead: float | None = None,
    ) -> V:
        """Return the value under ``key``, computing it once with ``factory`` on a miss.

        Concurrent misses share one call of ``factory`` (single flight); its exception
        reaches every caller and nothing is stored. ``refresh_ahead`` seconds before expiry,
        a hit also reloads the value in the background.
        """

    async def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """Return the values found under ``keys`` (missing keys are left out)."""

    async def set_many(
        self, items: Mapping[K, V], ttl: float | None = None, *, tags: Iterable[str] = ()
    ) -> None:
        """Store every item, all with the same ``ttl`` and ``tags``."""

    async def delete_many(self, keys: Iterable[K]) -> int:
        """Remove ``keys``; return how many held a value."""

    async def clear(self) -> None:
        """Remove every entry of this cache."""

    async def close(self) -> None:
        """Release what the cache holds open (tasks, connections)."""
