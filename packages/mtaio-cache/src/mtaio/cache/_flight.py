"""Single flight: concurrent loads of one key share one task (TTLCache and DistributedCache).

The first caller that misses starts the load as a task; later callers await the same task
(shielded, so one caller's cancellation does not cancel it for the others). The last
waiter to give up cancels it. A write or delete of the key while it loads marks the
flight stale: its result is still returned to the waiters but must not be stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, TypeVar

from mtaio.exceptions import CacheError

__all__ = ("Flight", "SingleFlight", "Uncached")

T = TypeVar("T")

_get_running_loop = asyncio.get_running_loop


class Uncached(Exception):
    """Raised by a load whose result must be returned but not stored (``cached(condition=)``).

    A load that raises stores nothing and its exception reaches every caller waiting on
    it, so the value travels to all of them; a cache does not count it as a load error.
    """

    def __init__(self, value: Any) -> None:
        super().__init__("result not to be cached")
        self.value = value


class Flight:
    """One in-flight load of a key: the task and how many await it."""

    __slots__ = ("stale", "task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.waiters = 0
        self.stale = False  # the key was written or deleted meanwhile: do not store the result


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The waiters see the exception; this keeps asyncio from logging it as never retrieved
    # when every waiter gave up first.
    if not task.cancelled():
        task.exception()


def _closed(key: Hashable) -> Exception:
    return CacheError(f"the load of key {key!r} was cancelled (cache closed)")


class SingleFlight:
    """The loads in flight, by key.

    ``flights`` is exposed so a hot path can skip all work with ``if flights:``.

    Args:
        track: Called with every task started, so its owner can cancel it on close.
        closed: The error a waiter gets when its owner's close cancelled the load (given
            the key); by default a ``CacheError`` saying the cache was closed.
    """

    __slots__ = ("_closed", "_track", "flights")

    def __init__(
        self,
        track: Callable[[asyncio.Task[Any]], None],
        closed: Callable[[Hashable], Exception] | None = None,
    ) -> None:
        self.flights: dict[Hashable, Flight] = {}
        self._track = track
        self._closed = closed or _closed

    def start(self, key: Hashable, load: Coroutine[Any, Any, Any]) -> Flight:
        """Run ``load`` as the flight of ``key``; it must call :meth:`finish` when it ends."""
        task = _get_running_loop().create_task(load)
        flight = Flight(task)
        flights = self.flights
        flights[key] = flight

        def forget(_: asyncio.Task[Any]) -> None:
            # A task cancelled before its first step never runs the load's own cleanup.
            if flights.get(key) is flight:
                del flights[key]

        self._track(task)
        task.add_done_callback(forget)
        task.add_done_callback(_retrieve)
        return flight

    def finish(self, key: Hashable) -> Flight | None:
        """Called by the load itself as it ends: forget its flight and return it."""
        flight = self.flights.get(key)
        if flight is not None and flight.task is asyncio.current_task():
            del self.flights[key]
            return flight
        return None

    def mark_stale(self, key: Hashable) -> None:
        """The key was written or deleted: its load in flight must not store its result."""
        flight = self.flights.get(key)
        if flight is not None:
            flight.stale = True

    def mark_all_stale(self) -> None:
        """Every key was removed (a clear)."""
        for flight in self.flights.values():
            flight.stale = True

    async def wait(self, key: Hashable, flight: Flight) -> Any:
        """Await the result of ``flight`` as one more waiter.

        Raises:
            CacheError: If the load was cancelled by its owner's close (not by this caller).
            Exception: Whatever the load raised.
        """
        flight.waiters += 1
        task = flight.task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise self._closed(key) from None
            if flight.waiters == 1 and not task.done():
                task.cancel()  # no one else waits: stop the load
            raise
        finally:
            flight.waiters -= 1
