"""Transactions on a :class:`~mtaio.cache.TTLCache`: buffered writes applied together."""

from __future__ import annotations

from collections.abc import Hashable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from mtaio.exceptions import CacheError

from ._listeners import Removal
from ._wheel import unhashable

if TYPE_CHECKING:
    from ._ttl import TTLCache

__all__ = ("CacheTransaction",)

T = TypeVar("T")
D = TypeVar("D")

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
            raise unhashable(key) from None
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
            raise unhashable(key) from None

    async def delete(self, key: Hashable) -> bool:
        """Buffer a :meth:`TTLCache.delete`.

        Returns:
            Whether the key holds a value as this transaction sees it.
        """
        self._check_open()
        try:
            op = self._ops.get(key)
        except TypeError:
            raise unhashable(key) from None
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
        removed: list[Removal] = []
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
