"""A context manager usable with ``with`` and ``async with`` alike, and as a decorator.

The timers, trackers, spans and sampling blocks of this package do the same thing on entry
and exit whether the caller is sync or async; they say what in :meth:`Block._enter` and
:meth:`Block._exit` and inherit the four dunder methods from here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from mtaio.exceptions import require_callable

_P = ParamSpec("_P")
_R = TypeVar("_R")


class Block:
    """Base of the sync-and-async context managers of this package."""

    __slots__ = ()

    def _enter(self) -> None:
        raise NotImplementedError

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc_type)

    async def __aenter__(self) -> Self:
        self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc_type)


class DecoratorBlock(Block):
    """A :class:`Block` that also decorates sync and async functions.

    Used as a decorator, every call runs inside a fresh copy (:meth:`_fresh`), so concurrent
    calls of the decorated function never share the block's per-use state.
    """

    __slots__ = ()

    def _fresh(self) -> Self:
        raise NotImplementedError

    def __call__(self, fn: Callable[_P, _R]) -> Callable[_P, _R]:
        """Decorate ``fn`` (sync or async): each call runs inside the block."""
        require_callable("fn", fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def sync_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with self._fresh():
                return fn(*args, **kwargs)

        return sync_wrapper
