"""Runtime helpers shared by the packages."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from mtaio.exceptions import require_non_negative
from mtaio.exceptions._publish import publish_module as publish_module

_T = TypeVar("_T")


def is_async_callable(obj: object) -> bool:
    """Tell whether calling ``obj`` returns a coroutine.

    Sees through :func:`functools.partial` and objects whose ``__call__`` is a coroutine
    function, which :func:`inspect.iscoroutinefunction` alone misses.

    Args:
        obj: Any object.

    Returns:
        True for coroutine functions, partials of them and instances with an async ``__call__``.
    """
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - we want the async __call__, not callable()
    )


@overload
async def call_maybe_async(
    func: Callable[..., Awaitable[_T]], /, *args: Any, **kwargs: Any
) -> _T: ...
@overload
async def call_maybe_async(func: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T: ...
async def call_maybe_async(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call a synchronous or asynchronous callable and return its result.

    The result is awaited when it is awaitable, so a sync function returning a coroutine
    (a lambda wrapping an async call) works too.

    Args:
        func: The callable.
        *args: Positional arguments for it.
        **kwargs: Keyword arguments for it.

    Returns:
        What ``func`` returned, awaited if it was awaitable.
    """
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


class ManualClock:
    """A clock that moves only when told to: inject it wherever mtaio takes a ``clock``.

    Example:
        >>> clock = ManualClock()
        >>> clock()
        0.0
        >>> clock.advance(2.5)
        2.5
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The current reading."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new reading.

        Raises:
            ConfigurationError: If ``seconds`` is negative: a monotonic clock never goes back.
        """
        self._now += require_non_negative("seconds", seconds)
        return self._now

    tick = advance

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"
