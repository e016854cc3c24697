"""The ``cached`` decorator: memoise a coroutine function in a :class:`TTLCache`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, ParamSpec, TypeVar

from mtaio.exceptions import ConfigurationTypeError, require_callable, require_positive

from ._ttl import TTLCache

__all__ = ("cached",)

P = ParamSpec("P")
R = TypeVar("R")


def _default_key(qualname: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
    if kwargs:
        return (qualname, args, tuple(sorted(kwargs.items())))
    return (qualname, args)


def cached(
    cache: TTLCache[Any],
    *,
    ttl: float | None = None,
    key: Callable[..., Hashable] | None = None,
    refresh_ahead: float | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Cache the results of a coroutine function in ``cache``.

    Concurrent calls with the same key run the function once (single flight, see
    :meth:`TTLCache.get_or_set`); an exception reaches every caller and is not cached.
    The decorated function keeps its signature for type checkers.

    Example:
        >>> cache: TTLCache[int] = TTLCache(default_ttl=60.0)
        >>> @cached(cache, ttl=10.0)
        ... async def square(x: int) -> int:
        ...     return x * x

    Args:
        cache: Where results are kept.
        ttl: Seconds a result lives; ``None`` uses the cache's ``default_ttl``.
        key: Called with the function's arguments, returns the cache key. By default the
            key is ``(qualified name, args)`` plus the sorted keyword arguments, so the
            arguments must be hashable.
        refresh_ahead: Seconds before expiry from which a call that hits also recomputes
            the value in the background, serving the old value meanwhile.

    Returns:
        A decorator for coroutine functions.

    Raises:
        ConfigurationTypeError: If ``cache`` is not a :class:`TTLCache` or ``key`` is not
            callable.
        ConfigurationError: If ``ttl`` or ``refresh_ahead`` is not positive.
    """
    if not isinstance(cache, TTLCache):
        raise ConfigurationTypeError(f"cache must be a TTLCache, got {cache!r}")
    if ttl is not None:
        require_positive("ttl", ttl)
    if refresh_ahead is not None:
        require_positive("refresh_ahead", refresh_ahead)
    if key is not None:
        require_callable("key", key)

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        require_callable("func", func)
        qualname = f"{func.__module__}.{func.__qualname__}"

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            k = key(*args, **kwargs) if key is not None else _default_key(qualname, args, kwargs)
            result: R = await cache.get_or_set(
                k, lambda: func(*args, **kwargs), ttl, refresh_ahead=refresh_ahead
            )
            return result

        return wrapper

    return decorate
