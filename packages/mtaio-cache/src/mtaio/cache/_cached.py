"""The ``cached`` decorator: memoise a coroutine function in any :class:`AsyncCache`.

Keys: by default a string built from the function's qualified name and its arguments bound
to its signature, defaults applied, so ``f(1)``, ``f(x=1)`` and ``f(1, y=2)`` (with ``y=2``
the default) are one entry. A string because a :class:`~mtaio.cache.DistributedCache` keys
by string and shares entries between processes: the text must be the same in every
process, so only values whose ``repr`` is stable and faithful are accepted (None, bools,
numbers, strings, bytes, enums, and tuples, lists, sets and dicts of them); any other
argument (``self`` of a method, say) needs a ``key`` builder, rather than a key that would
silently differ between processes or, worse, collide.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, cast, overload

from mtaio.exceptions import ConfigurationTypeError, require_callable, require_positive
from mtaio.typing import is_async_callable

from ._flight import Uncached
from ._protocol import AsyncCache

__all__ = ("CachedFunction", "cached")

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
K = TypeVar("K")
K_contra = TypeVar("K_contra", contravariant=True)
V = TypeVar("V")

_PLAIN = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
_SCALARS = (type(None), bool, int, float, str, bytes)


class CachedFunction(Protocol[P, R_co]):
    """What :func:`cached` returns: the function, plus its cache's handles on one call.

    A decorated method binds its instance like a function: ``svc.load.invalidate(7)``
    (or ``Service.load.invalidate(svc, 7)``).
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Awaitable[Any]]

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: CachedFunction[Concatenate[Any, P2], R_co],
        instance: object,
        owner: type[Any] | None = None,
        /,
    ) -> CachedFunction[P2, R_co]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> Any:
        """Bind a decorated method to its instance."""
        ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]:
        """Return the cached result of this call, computing it on a miss."""
        ...

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> Hashable:
        """Return the key under which this call's result is cached."""
        ...

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Drop the cached result of this call; return whether one was there."""
        ...


class _Loading(Protocol[K_contra, V]):
    """The part of :class:`AsyncCache` that ``cached`` uses, for type inference.

    mypy infers a protocol's type arguments from every member, and an overloaded member
    (``AsyncCache.get``) makes it give up: inferring the value type from these two alone
    keeps ``cached(TTLCache[str]())`` on a function returning ``int`` an error. At run
    time ``cached`` still requires a whole :class:`AsyncCache`.
    """

    async def delete(self, key: K_contra, /) -> bool: ...

    async def get_or_set(
        self,
        key: K_contra,
        factory: Callable[[], Awaitable[V]] | Callable[[], V],
        ttl: float | None = None,
        /,
        *,
        refresh_ahead: float | None = None,
    ) -> V: ...


def _encode(value: object, name: str) -> str:
    kind = type(value)
    if kind in _SCALARS:
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{kind.__qualname__}.{value.name}"
    if kind is tuple or kind is list:
        inner = ",".join(_encode(item, name) for item in value)  # type: ignore[attr-defined]
        return f"({inner})" if kind is tuple else f"[{inner}]"
    if kind is dict:
        items = sorted(
            (_encode(k, name), _encode(v, name))
            for k, v in value.items()  # type: ignore[attr-defined]
        )
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if kind is set or kind is frozenset:
        return "{" + ",".join(sorted(_encode(item, name) for item in value)) + "}"  # type: ignore[attr-defined]
    raise ConfigurationTypeError(
        f"cached: argument {name!r} ({kind.__name__}) has no stable key; give cached a "
        f"key=... builder that returns one (for example from its id or fields)"
    )


class _KeyBuilder:
    """Builds the default key of one function: its name and its bound arguments."""

    __slots__ = ("_names", "_prefix", "_signature", "_simple")

    def __init__(self, func: Callable[..., Any]) -> None:
        self._prefix = f"{func.__module__}.{func.__qualname__}"
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        self._names = tuple(p.name for p in params)
        # The common shape, bound without inspect: plain parameters, all given by position.
        self._simple = all(p.kind in _PLAIN for p in params)

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        names = self._names
        if self._simple and not kwargs and len(args) == len(names):
            pairs: Iterable[tuple[str, Any]] = zip(names, args, strict=True)
        else:
            bound = self._signature.bind(*args, **kwargs)  # TypeError as the call would
            bound.apply_defaults()
            pairs = bound.arguments.items()
        return (
            self._prefix
            + "("
            + ",".join(f"{name}={_encode(value, name)}" for name, value in pairs)
            + ")"
        )


class _Cached(Generic[P, R]):
    """The decorated function (see :class:`CachedFunction`)."""

    def __init__(
        self,
        func: Callable[P, Awaitable[R]],
        cache: _Loading[Any, R],
        ttl: float | None,
        key: Callable[..., Hashable] | None,
        refresh_ahead: float | None,
        condition: Callable[[R], bool] | None,
    ) -> None:
        self._func = func
        self._cache = cache
        self._ttl = ttl
        self._key = key
        self._default_key = _KeyBuilder(func) if key is None else None
        self._refresh_ahead = refresh_ahead
        self._condition = condition
        functools.update_wrapper(self, func)

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> Hashable:
        if self._key is not None:
            return self._key(*args, **kwargs)
        assert self._default_key is not None
        return self._default_key(args, kwargs)

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        return await self._cache.delete(self.cache_key(*args, **kwargs))

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = self.cache_key(*args, **kwargs)
        func = self._func
        condition = self._condition
        factory: Callable[[], Awaitable[R]]
        if condition is None:

            def factory() -> Awaitable[R]:
                return func(*args, **kwargs)

        else:

            async def load_unless() -> R:
                result = await func(*args, **kwargs)
                if not condition(result):
                    # Raised, not returned: a load that raises stores nothing, and every
                    # caller waiting on this load (single flight) receives the value.
                    raise Uncached(result)
                return result

            factory = load_unless

        try:
            if self._refresh_ahead is None:
                return await self._cache.get_or_set(key, factory, self._ttl)
            return await self._cache.get_or_set(
                key, factory, self._ttl, refresh_ahead=self._refresh_ahead
            )
        except Uncached as skipped:
            value: R = skipped.value
            return value

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # Decorating a method: bind the instance like a function would.
        if instance is None:
            return self
        return _Bound(self, instance)

    def __repr__(self) -> str:
        return f"<cached {self._func!r} in {self._cache!r}>"


class _Bound:
    """A cached method bound to its instance: ``svc.load.invalidate(7)`` works too."""

    __slots__ = ("__func__", "__self__")

    def __init__(self, func: _Cached[..., Any], instance: object) -> None:
        self.__func__ = func
        self.__self__ = instance

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        return self.__func__(self.__self__, *args, **kwargs)

    def cache_key(self, *args: Any, **kwargs: Any) -> Hashable:
        return self.__func__.cache_key(self.__self__, *args, **kwargs)

    async def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        return await self.__func__.invalidate(self.__self__, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<bound {self.__func__!r} of {self.__self__!r}>"


@overload
def cached(
    cache: _Loading[Any, R],
    *,
    ttl: float | None = None,
    key: None = None,
    refresh_ahead: float | None = None,
    condition: Callable[[R], bool] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]: ...
@overload
def cached(
    cache: _Loading[K, R],
    *,
    ttl: float | None = None,
    key: Callable[P, K],
    refresh_ahead: float | None = None,
    condition: Callable[[R], bool] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]: ...
def cached(
    cache: _Loading[Any, R],
    *,
    ttl: float | None = None,
    key: Callable[..., Any] | None = None,
    refresh_ahead: float | None = None,
    condition: Callable[[R], bool] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]:
    """Cache the results of a coroutine function in ``cache``.

    Concurrent calls with the same key run the function once (single flight, see
    :meth:`AsyncCache.get_or_set`); an exception reaches every caller and is not cached.
    The decorated function keeps its signature for type checkers, and gains
    ``cache_key(*args, **kwargs)`` and ``invalidate(*args, **kwargs)``.

    Example:
        >>> from mtaio.cache import TTLCache
        >>> cache: TTLCache[int] = TTLCache(default_ttl=60.0)
        >>> @cached(cache, ttl=10.0)
        ... async def square(x: int, scale: int = 1) -> int:
        ...     return x * x * scale
        >>> square.cache_key(3) == square.cache_key(x=3, scale=1)
        True

    Args:
        cache: Where results are kept: a :class:`~mtaio.cache.TTLCache`,
            :class:`~mtaio.cache.DistributedCache`, :class:`~mtaio.cache.LayeredCache`
            or any :class:`AsyncCache`. Its value type must hold the function's result.
        ttl: Seconds a result lives; ``None`` uses the cache's default.
        key: Called with the function's arguments, returns the cache key (type-checked
            against the function's parameters). By default, a string of the function's
            qualified name and its arguments bound to its signature (defaults applied);
            arguments must then be None, bools, numbers, strings, bytes, enums, or
            tuples, lists, sets and dicts of them.
        refresh_ahead: Seconds before expiry from which a call that hits also recomputes
            the value in the background, serving the old value meanwhile.
        condition: Called with each computed result; a false answer returns the result
            without caching it (``condition=lambda r: r is not None`` skips misses).

    Returns:
        A decorator for coroutine functions.

    Raises:
        ConfigurationTypeError: If ``cache`` does not implement :class:`AsyncCache`,
            ``key`` or ``condition`` is not callable, or the decorated function is not a
            coroutine function (a sync function would silently turn into one).
        ConfigurationError: If ``ttl`` or ``refresh_ahead`` is not positive.
    """
    if not isinstance(cache, AsyncCache):
        raise ConfigurationTypeError(
            f"cache must implement AsyncCache (get, set, delete, get_or_set, ...), got {cache!r}"
        )
    if ttl is not None:
        require_positive("ttl", ttl)
    if refresh_ahead is not None:
        require_positive("refresh_ahead", refresh_ahead)
    if key is not None:
        require_callable("key", key)
    if condition is not None:
        require_callable("condition", condition)

    def decorate(func: Callable[P, Awaitable[R]]) -> CachedFunction[P, R]:
        require_callable("func", func)
        if not is_async_callable(func):
            raise ConfigurationTypeError(
                f"cached decorates coroutine functions (async def), got {func!r}"
            )
        return cast(
            "CachedFunction[P, R]", _Cached(func, cache, ttl, key, refresh_ahead, condition)
        )

    return decorate
