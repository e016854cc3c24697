"""Cancellation-safe FIFO, priority and LIFO queues.

Design: an item enters the buffer only inside ``put``'s own synchronous step and leaves it only
inside ``get``'s own step, so a cancelled ``put`` or ``get`` can never have half-moved an item.
Waiters are plain futures. When room (or an item) appears, it is *granted* to the first waiter
and counted as reserved (``_reserved`` room, ``_claimed`` items) until that waiter runs, so a
later ``put_nowait``/``get_nowait`` cannot barge in: a woken waiter never has to block again, and
waiters are served strictly first come, first served. A waiter cancelled after its grant hands
the grant to the next waiter. Cancelled waiters stay in the deque and are skipped when met
(O(1) cancellation); the deques are compacted when they are mostly stale.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar, final

from mtaio.exceptions import ResourceLockError, require_non_negative_int

from ._errors import QueueClosedError, QueueEmptyError, QueueFullError
from ._support import check_priority

T = TypeVar("T")

_Waiters = deque["asyncio.Future[bool]"]
_COMPACT_AT = 64


@final
@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of a queue's counters, from :meth:`AsyncQueue.stats`.

    Attributes:
        size: Items in the queue now.
        maxsize: The bound given at creation (``0``: unbounded).
        getters: ``get`` calls waiting for an item.
        putters: ``put`` calls waiting for room.
        unfinished: Items put but not yet marked done with ``task_done``.
    """

    size: int
    maxsize: int
    getters: int
    putters: int
    unfinished: int


class _QueueBase(Generic[T]):
    """The shared machinery; subclasses choose the storage through ``_push``/``_pop``/``_size``."""

    __slots__ = (
        "__weakref__",
        "_claimed",
        "_closed",
        "_getters",
        "_joiners",
        "_maxsize",
        "_putters",
        "_reserved",
        "_stale",
        "_unfinished",
    )

    def __init__(self, maxsize: int = 0) -> None:
        self._maxsize = require_non_negative_int("maxsize", maxsize)
        self._getters: _Waiters = deque()
        self._putters: _Waiters = deque()
        self._claimed = 0  # items granted to woken getters that have not run yet
        self._reserved = 0  # room granted to woken putters that have not run yet
        self._stale = 0  # cancelled waiters still sitting in the deques
        self._unfinished = 0
        self._joiners: list[asyncio.Future[None]] = []
        self._closed = False

    # -- storage hooks ---------------------------------------------------------------------

    def _size(self) -> int:
        raise NotImplementedError

    def _pop(self) -> T:
        raise NotImplementedError

    # -- introspection ---------------------------------------------------------------------

    @property
    def maxsize(self) -> int:
        """The capacity; 0 means unbounded."""
        return self._maxsize

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def qsize(self) -> int:
        """Return the number of items in the queue."""
        return self._size()

    def empty(self) -> bool:
        """Return True if the queue holds no item."""
        return self._size() == 0

    def full(self) -> bool:
        """Return True if a ``put`` would block now (never for an unbounded queue)."""
        return 0 < self._maxsize <= self._size() + self._reserved

    def stats(self) -> QueueStats:
        """Return counts worth graphing.

        Returns:
            A :class:`QueueStats` snapshot: ``size``, ``maxsize``, ``getters`` and ``putters``
            waiting, ``unfinished`` items (put but not yet marked done with :meth:`task_done`).
        """
        return QueueStats(
            size=self._size(),
            maxsize=self._maxsize,
            getters=sum(1 for f in self._getters if not f.done()),
            putters=sum(1 for f in self._putters if not f.done()),
            unfinished=self._unfinished,
        )

    def __len__(self) -> int:
        return self._size()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} size={self._size()} maxsize={self._maxsize}{state}>"

    def _is_closed(self) -> bool:
        # A method, not the attribute: mypy would keep a narrowing of it across an await.
        return self._closed

    # -- granting --------------------------------------------------------------------------

    def _grant_getters(self) -> None:
        getters = self._getters
        while getters and self._size() > self._claimed:
            waiter = getters.popleft()
            if waiter.done():
                self._stale -= 1
                continue
            self._claimed += 1
            waiter.set_result(True)

    def _grant_putters(self) -> None:
        putters = self._putters
        while putters and self._size() + self._reserved < self._maxsize:
            waiter = putters.popleft()
            if waiter.done():
                self._stale -= 1
                continue
            self._reserved += 1
            waiter.set_result(True)

    def _forget(self, waiter: asyncio.Future[bool]) -> None:
        # The waiter was cancelled before any grant: leave it in its deque (O(1)) and compact
        # once stale entries dominate, so repeated timeouts cannot grow the deques forever.
        waiter.cancel()  # a no-op when the task's cancellation already cancelled it
        self._stale += 1
        if self._stale > _COMPACT_AT and self._stale * 2 > len(self._getters) + len(self._putters):
            self._getters = deque(f for f in self._getters if not f.done())
            self._putters = deque(f for f in self._putters if not f.done())
            self._stale = 0

    async def _wait(self, waiters: _Waiters) -> bool:
        """Wait for a grant; return False if the queue was closed instead."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                # Cancelled after the grant: hand it on so nothing is lost or stuck.
                if waiters is self._getters:
                    self._claimed -= 1
                    self._grant_getters()
                else:
                    self._reserved -= 1
                    self._grant_putters()
            elif not waiter.done() or waiter.cancelled():
                self._forget(waiter)
            raise

    # -- getting ---------------------------------------------------------------------------

    def get_nowait(self) -> T:
        """Remove and return an item without waiting.

        Raises:
            QueueEmptyError: If no item is available (also ``asyncio.QueueEmpty``).
            QueueClosedError: If the queue is closed and drained.
        """
        if self._size() <= self._claimed:
            if self._closed:
                raise QueueClosedError("the queue is closed and empty")
            raise QueueEmptyError("the queue is empty")
        item = self._pop()
        if self._putters:
            self._grant_putters()
        return item

    async def get(self) -> T:
        """Remove and return an item, waiting until one is available.

        Items put before :meth:`close` are still delivered; after that, getters fail.

        Returns:
            The next item.

        Raises:
            QueueClosedError: If the queue is closed and holds no more item.
        """
        if self._size() > self._claimed:
            item = self._pop()
            if self._putters:
                self._grant_putters()
            return item
        return await self._get_waiting()

    async def _get_waiting(self) -> T:
        if self._closed or not await self._wait(self._getters):
            raise QueueClosedError("the queue is closed and empty")
        self._claimed -= 1
        item = self._pop()
        if self._putters:
            self._grant_putters()
        return item

    # -- putting (the storage-specific put methods call these) -------------------------------

    def _check_put_nowait(self) -> None:
        if self._closed:
            raise QueueClosedError("cannot put into a closed queue")
        if 0 < self._maxsize <= self._size() + self._reserved:
            raise QueueFullError(f"the queue is full (maxsize={self._maxsize})")

    async def _wait_room(self) -> None:
        if self._closed:
            raise QueueClosedError("cannot put into a closed queue")
        if not await self._wait(self._putters):
            raise QueueClosedError("the queue was closed while waiting to put")
        self._reserved -= 1
        if self._is_closed():  # closed after our grant, before we ran
            self._grant_putters()
            raise QueueClosedError("the queue was closed while waiting to put")

    def _after_put(self) -> None:
        self._unfinished += 1
        if self._getters:
            self._grant_getters()

    # -- completion tracking ---------------------------------------------------------------

    def task_done(self) -> None:
        """Mark one item taken with ``get`` as processed (for :meth:`join`).

        Raises:
            ResourceLockError: If called more times than items were put.
        """
        if self._unfinished <= 0:
            raise ResourceLockError("task_done() called more times than items were put")
        self._unfinished -= 1
        if self._unfinished == 0:
            joiners, self._joiners = self._joiners, []
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        """Wait until every item put has been marked done with :meth:`task_done`."""
        if self._unfinished == 0:
            return
        joiner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._joiners.append(joiner)
        await joiner

    # -- closing and iteration -------------------------------------------------------------

    def close(self) -> None:
        """Close the queue: puts fail from now on, getters drain what is left, then fail.

        Every waiting putter, and every getter that no item is left for, is woken at once
        with :class:`QueueClosedError`. Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        for waiters in (self._getters, self._putters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(False)
        self._stale = 0

    def __aiter__(self) -> _QueueBase[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except QueueClosedError:
            raise StopAsyncIteration from None


@final
class AsyncQueue(_QueueBase[T]):
    """A first-in, first-out queue that is safe to cancel and can be closed.

    Like :class:`asyncio.Queue`, plus: :meth:`close` wakes every waiter with
    :class:`QueueClosedError`, ``async for item in queue`` runs until the queue is closed and
    drained, waiters are served in arrival order, and a cancelled ``put``/``get`` neither loses
    nor duplicates an item.

    Args:
        maxsize: The capacity; ``0`` (the default) means unbounded.

    Raises:
        ConfigurationError: If ``maxsize`` is negative.

    Example:
        >>> async def main():
        ...     queue = AsyncQueue[int](maxsize=2)
        ...     await queue.put(1)
        ...     queue.close()
        ...     return [item async for item in queue]
        >>> asyncio.run(main())
        [1]
    """

    __slots__ = ("_items",)

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._items: deque[T] = deque()

    def _size(self) -> int:
        return len(self._items)

    def _pop(self) -> T:
        return self._items.popleft()

    async def get(self) -> T:
        """Remove and return the oldest item, waiting until one is available.

        Items put before :meth:`close` are still delivered; after that, getters fail.

        Returns:
            The next item.

        Raises:
            QueueClosedError: If the queue is closed and holds no more item.
        """
        items = self._items
        if len(items) > self._claimed:  # the storage hooks inlined: this is the hot path
            item = items.popleft()
            if self._putters:
                self._grant_putters()
            return item
        return await self._get_waiting()

    def put_nowait(self, item: T) -> None:
        """Put an item without waiting.

        Raises:
            QueueFullError: If the queue is full (also ``asyncio.QueueFull``).
            QueueClosedError: If the queue is closed.
        """
        self._check_put_nowait()
        self._items.append(item)
        self._after_put()

    async def put(self, item: T) -> None:
        """Put an item, waiting for room if the queue is full.

        Raises:
            QueueClosedError: If the queue is closed, before or while waiting.
        """
        if self._closed or 0 < self._maxsize <= len(self._items) + self._reserved:
            await self._wait_room()
        self._items.append(item)
        self._unfinished += 1
        if self._getters:
            self._grant_getters()


@final
class LIFOQueue(_QueueBase[T]):
    """A last-in, first-out queue (a stack) with the behaviour of :class:`AsyncQueue`.

    Args:
        maxsize: The capacity; ``0`` (the default) means unbounded.

    Raises:
        ConfigurationError: If ``maxsize`` is negative.
    """

    __slots__ = ("_items",)

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._items: list[T] = []

    def _size(self) -> int:
        return len(self._items)

    def _pop(self) -> T:
        return self._items.pop()

    def put_nowait(self, item: T) -> None:
        """Put an item without waiting.

        Raises:
            QueueFullError: If the queue is full (also ``asyncio.QueueFull``).
            QueueClosedError: If the queue is closed.
        """
        self._check_put_nowait()
        self._items.append(item)
        self._after_put()

    async def put(self, item: T) -> None:
        """Put an item, waiting for room if the queue is full.

        Raises:
            QueueClosedError: If the queue is closed, before or while waiting.
        """
        if self._closed or 0 < self._maxsize <= len(self._items) + self._reserved:
            await self._wait_room()
        self._items.append(item)
        self._after_put()


@final
class PriorityQueue(_QueueBase[T]):
    """A queue that gives the item of lowest ``priority`` first, FIFO among equal priorities.

    Items need not be comparable: the priority, a number, is given beside the item
    (``put(item, priority=2)``) and ties are broken by insertion order. Otherwise it behaves
    like :class:`AsyncQueue`. Each operation costs O(log n).

    Args:
        maxsize: The capacity; ``0`` (the default) means unbounded.

    Raises:
        ConfigurationError: If ``maxsize`` is negative.
    """

    __slots__ = ("_heap", "_seq")

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count().__next__

    def _size(self) -> int:
        return len(self._heap)

    def _pop(self) -> T:
        return heapq.heappop(self._heap)[2]

    async def get(self) -> T:
        """Remove and return the item of lowest priority, waiting until one is available.

        Items put before :meth:`close` are still delivered; after that, getters fail.

        Returns:
            The next item.

        Raises:
            QueueClosedError: If the queue is closed and holds no more item.
        """
        heap = self._heap
        if len(heap) > self._claimed:  # the storage hooks inlined: this is the hot path
            item = heapq.heappop(heap)[2]
            if self._putters:
                self._grant_putters()
            return item
        return await self._get_waiting()

    def put_nowait(self, item: T, priority: float = 0) -> None:
        """Put an item without waiting.

        Args:
            item: The item.
            priority: A number (int or float, not NaN); lower comes out first.

        Raises:
            ConfigurationTypeError: If ``priority`` is not an int or a float.
            ConfigurationError: If ``priority`` is NaN.
            QueueFullError: If the queue is full (also ``asyncio.QueueFull``).
            QueueClosedError: If the queue is closed.
        """
        if type(priority) is not int:
            check_priority("priority", priority)
        self._check_put_nowait()
        heapq.heappush(self._heap, (priority, self._seq(), item))
        self._after_put()

    async def put(self, item: T, priority: float = 0) -> None:
        """Put an item, waiting for room if the queue is full.

        Args:
            item: The item.
            priority: A number (int or float, not NaN); lower comes out first.

        Raises:
            ConfigurationTypeError: If ``priority`` is not an int or a float.
            ConfigurationError: If ``priority`` is NaN.
            QueueClosedError: If the queue is closed, before or while waiting.
        """
        if type(priority) is not int:
            check_priority("priority", priority)
        if self._closed or 0 < self._maxsize <= len(self._heap) + self._reserved:
            await self._wait_room()
        heapq.heappush(self._heap, (priority, self._seq(), item))
        self._unfinished += 1  # _after_put() inlined: this is the hot path
        if self._getters:
            self._grant_getters()
