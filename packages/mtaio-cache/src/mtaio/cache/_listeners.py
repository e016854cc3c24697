"""Removal listeners of the local cache: who hears that an entry left, and how.

Listeners run after the cache is consistent again, so they may use it. Sync listeners are
called in place; async ones (and sync ones returning an awaitable) are awaited in order,
from the operation that removed the entry, or in one task when the removal happened in
synchronous code. A failing listener is logged on ``mtaio.cache`` and never fails the
operation.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Hashable
from typing import Any

from ._policies import EvictionReason

__all__ = ("Listener", "Removal", "await_all", "call_listeners", "close_all")

logger = logging.getLogger("mtaio.cache")

_EXPIRED = EvictionReason.EXPIRED
_CAPACITY = EvictionReason.CAPACITY

#: One removal, as handed to listeners: (key, value, reason).
Removal = tuple[Hashable, Any, EvictionReason]


class Listener:
    """A callback; ``simple`` ones take ``(key, value)`` and hear only evictions."""

    __slots__ = ("callback", "simple")

    def __init__(self, callback: Callable[..., Any], simple: bool) -> None:
        self.callback = callback
        self.simple = simple


def call_listeners(
    listeners: list[Listener], key: Hashable, value: Any, reason: EvictionReason
) -> list[Any]:
    """Call every listener for one removal; return the awaitables they gave back."""
    pending: list[Any] = []
    for listener in tuple(listeners):
        if listener.simple and reason is not _EXPIRED and reason is not _CAPACITY:
            continue
        try:
            if listener.simple:
                result = listener.callback(key, value)
            else:
                result = listener.callback(key, value, reason)
        except Exception:
            logger.exception("cache listener %r failed for key %r", listener.callback, key)
            continue
        # Async listeners, and sync ones returning an awaitable (a lambda wrapping an
        # async call): both are awaited, never left as un-awaited coroutines.
        if inspect.isawaitable(result):
            pending.append((listener.callback, key, result))
    return pending


async def await_all(pending: list[Any]) -> None:
    """Await what :func:`call_listeners` returned, in order, logging failures."""
    for callback, key, awaitable in pending:
        try:
            await awaitable
        except Exception:
            logger.exception("cache listener %r failed for key %r", callback, key)


def close_all(pending: list[Any]) -> None:
    """Close the coroutines of ``pending`` that will never be awaited."""
    for _, _, awaitable in pending:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
