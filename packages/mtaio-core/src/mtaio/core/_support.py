"""Small helpers shared by the executor's modules and the queues."""

from __future__ import annotations

import asyncio
import inspect
from typing import cast

from mtaio.exceptions import require_number, require_positive_int


def check_priority(name: str, priority: object) -> float:
    """Check a priority: an int or a float, not a bool, not NaN (``±inf`` is fine).

    A priority is compared with every other one in a heap: a string or ``None`` raises
    ``TypeError`` deep inside a worker (the executor's submit workers died and respawned in
    a loop), and NaN compares false with everything, silently corrupting the order. Both are
    refused here, at the call. The callers test ``type(priority) is int`` first, so the
    common case costs one identity check.

    Args:
        name: The argument's name, used in the error message.
        priority: The value to check.

    Returns:
        ``priority``, unchanged.

    Raises:
        ConfigurationTypeError: If ``priority`` is not an int or a float (bools refused).
        ConfigurationError: If ``priority`` is NaN.
    """
    return require_number(
        name, cast(float, priority), "a number (an int or a float; lower comes first)"
    )


def discard(aw: object) -> None:
    """Close a coroutine that will never run, so Python does not warn it was never awaited."""
    if inspect.iscoroutine(aw):
        aw.close()


def check_limit(name: str, limit: int | None) -> int | None:
    """Check an optional concurrency cap: ``None`` or a positive integer."""
    if limit is not None:
        require_positive_int(name, limit)
    return limit


def set_none(fut: asyncio.Future[None]) -> None:
    """Resolve ``fut`` with ``None`` unless it is already done."""
    if not fut.done():
        fut.set_result(None)
