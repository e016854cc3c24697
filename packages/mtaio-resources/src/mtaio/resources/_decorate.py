"""Turn an ``acquire``/``release`` pair into a signature-preserving decorator."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from mtaio.exceptions import ConfigurationTypeError
from mtaio.typing import is_async_callable

_P = ParamSpec("_P")
_R = TypeVar("_R")


def guard(
    func: Callable[_P, Awaitable[_R]],
    acquire: Callable[[], Awaitable[object]],
    release: Callable[[], object] | None,
    owner: str,
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Wrap ``func`` so every call runs between ``acquire()`` and ``release()``.

    Args:
        func: The coroutine function to wrap.
        acquire: Awaited before each call.
        release: Called after each call, also when it raises; ``None`` for nothing.
        owner: The decorator's name, for the error message on a sync function.

    Returns:
        The wrapped coroutine function, with ``func``'s signature and metadata.

    Raises:
        ConfigurationTypeError: If ``func`` is not an async callable.
    """
    if not is_async_callable(func):
        raise ConfigurationTypeError(
            f"{owner} decorates coroutine functions (async def), got {func!r}"
        )

    if release is None:

        @functools.wraps(func)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            await acquire()
            return await func(*args, **kwargs)

        return wrapper

    rel = release

    @functools.wraps(func)
    async def released(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        await acquire()
        try:
            return await func(*args, **kwargs)
        finally:
            rel()

    return released
