"""TaskExecutor: run awaitables with a concurrency cap, a start rate and priorities.

How work runs, and why:

* ``run`` awaits the work inline, in the caller's task: no task is created, the work's own
  exception reaches the caller unchanged and cancelling the caller cancels the work.
* ``gather``, ``map`` and the streaming variants use a *worker pool* (``_batch.py``):
  ``limit`` worker tasks pull the next awaitable from a shared iterator and await it
  inline. 20k coroutines through a limit of 100 cost 100 tasks, not 20k (a task per item is
  what makes ``asyncio.gather`` + ``Semaphore`` several times slower than a hand-written pool).
* ``submit`` queues work in a priority heap served by up to ``limit`` worker tasks owned by
  the executor; each submission gets a :class:`TaskHandle` (``_handle.py``; a future, not a
  task).
* Every start, whatever its entry point, takes one *slot* of the executor-wide cap
  (``limit``) and one *token* of the rate (``rate``, ``burst``). Slot waiters are served by
  priority, FIFO among equals; the fast path (a free slot and nobody waiting) is a counter
  increment.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import inspect
import itertools
import logging
import math
import threading
from collections import deque
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sized,
)
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from types import CoroutineType, TracebackType
from typing import Any, Literal, TypeVar, final, overload

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    require_callable,
    require_positive,
    require_positive_int,
)
from mtaio.exceptions import TimeoutError as MTAIOTimeoutError

from ._batch import COLLECT, FAIL_FAST, RETURN, Batch, ResultStream, azip
from ._errors import ExecutorClosedError
from ._handle import CANCELLED, DONE, FAILED, RUNNING, TaskHandle
from ._queues import AsyncQueue
from ._support import check_limit, check_priority, discard, set_none

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("mtaio.core")

DEFAULT_MAP_LIMIT = 100
"""Workers used by ``map`` over inputs of unknown length when no limit is given anywhere."""


_INF = math.inf


@final
@dataclass(frozen=True, slots=True)
class ExecutorStats:
    """A snapshot of a :class:`TaskExecutor`'s counters, from :meth:`TaskExecutor.stats`.

    Attributes:
        running: Work being awaited now.
        pending: Work given but not started: submitted, waiting for a slot, or not yet
            pulled by a ``gather``.
        completed: Work that finished with a result, since creation.
        failed: Work that raised, since creation.
        cancelled: Work cancelled, pending or running, since creation.
    """

    running: int
    pending: int
    completed: int
    failed: int
    cancelled: int


@final
class TaskExecutor:
    """Run awaitables and functions with a concurrency cap, a start rate and priorities.

    Creating it needs no running event loop and owns nothing yet: worker tasks and the
    thread pool are created on first use. It is an async context manager; :meth:`close`
    cancels the tasks it owns and shuts down the thread pool it created.

    Args:
        thread_pool: The executor for :meth:`run_in_thread`; it is not shut down by
            :meth:`close`. By default a :class:`~concurrent.futures.ThreadPoolExecutor` is
            created on first use, and shut down by :meth:`close`.
        max_workers: The number of threads of the pool created when ``thread_pool`` is
            not given (the default of ``ThreadPoolExecutor`` when ``None``).
        limit: The most work running at once across everything given to this executor,
            and the default ``limit`` of :meth:`gather` and :meth:`map`; ``None``: no cap.
        rate: Starts per second, as a token bucket: each start takes a token, the bucket
            refills ``rate`` tokens a second and holds at most ``burst``; ``None``: no rate
            cap. This is the toolkit's one definition of a rate, the same as
            ``mtaio.resources.RateLimiter(rate, burst)``.
        burst: The bucket's capacity: how many starts may happen at once after a quiet
            spell. By default ``max(1, rate / 10)``, as for ``RateLimiter``; ``burst=1``
            spaces every start by ``1 / rate``. Needs ``rate``.

    Raises:
        ConfigurationError: If ``limit`` or ``max_workers`` is not a positive integer, or
            ``rate`` is not a positive number, ``burst`` is less than 1 or given without
            ``rate``; if both ``thread_pool`` and ``max_workers`` are given.

    Example:
        >>> async def double(x: int) -> int:
        ...     return 2 * x
        >>> async def main():
        ...     async with TaskExecutor(limit=10) as executor:
        ...         return await executor.map(double, range(5))
        >>> asyncio.run(main())
        [0, 2, 4, 6, 8]
    """

    __slots__ = (
        "_active",
        "_burst",
        "_cancelled",
        "_capacity",
        "_closed",
        "_completed",
        "_failed",
        "_fifo",
        "_interval",
        "_limit",
        "_max_workers",
        "_own_pool",
        "_pending",
        "_queue",
        "_rate",
        "_running",
        "_seq",
        "_slot_waiters",
        "_stale_slots",
        "_submit_workers",
        "_tasks",
        "_tat",
        "_thread_pool",
        "_threads",
        "_window",
    )

    def __init__(
        self,
        thread_pool: Executor | None = None,
        *,
        max_workers: int | None = None,
        limit: int | None = None,
        rate: float | None = None,
        burst: float | None = None,
    ) -> None:
        if thread_pool is not None and not isinstance(thread_pool, Executor):
            raise ConfigurationTypeError(
                f"thread_pool must be a concurrent.futures.Executor or None, got {thread_pool!r}"
            )
        if max_workers is not None:
            require_positive_int("max_workers", max_workers)
            if thread_pool is not None:
                raise ConfigurationTypeError(
                    "max_workers sizes the pool TaskExecutor creates; "
                    "it cannot be combined with thread_pool"
                )
        self._thread_pool = thread_pool
        self._own_pool: ThreadPoolExecutor | None = None
        self._max_workers = max_workers
        self._limit = check_limit("limit", limit)
        self._capacity: float = _INF if limit is None else limit
        self._active = 0  # slots taken (running work, or work pacing for its start time)
        self._slot_waiters: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._stale_slots = 0
        self._seq = itertools.count().__next__
        if rate is not None:
            require_positive("rate", rate)
        if burst is not None:
            if require_positive("burst", burst) < 1:
                raise ConfigurationError(
                    f"burst must be at least 1 (a start takes one token), got {burst!r}"
                )
            if rate is None:
                raise ConfigurationError("burst sizes the rate's bucket: give rate= as well")
        elif rate is not None:
            burst = max(1.0, rate / 10)  # the default of mtaio.resources.RateLimiter
        self._rate = rate
        self._burst = burst
        self._interval = 0.0 if rate is None or rate == _INF else 1.0 / rate
        # The bucket as GCRA: _tat is the time the bucket would be full again (its
        # theoretical arrival time); a start may happen once _tat - now <= burst / rate.
        self._window = 0.0 if burst is None else burst * self._interval
        self._tat = -_INF
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queue: list[tuple[float, int, TaskHandle[Any]]] = []  # submitted, priority != 0
        self._fifo: deque[TaskHandle[Any]] = deque()  # submitted with priority 0
        self._submit_workers = 0
        self._closed = False
        self._running = 0
        self._pending = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._threads = 0

    # -- configuration and introspection -----------------------------------------------------

    @property
    def limit(self) -> int | None:
        """The most work running at once (``None``: no cap). Assigning calls :meth:`set_limit`."""
        return self._limit

    @limit.setter
    def limit(self, limit: int | None) -> None:
        self.set_limit(limit)

    def set_limit(self, limit: int | None) -> None:
        """Change the concurrency cap, also while work is running.

        A higher cap starts waiting work at once; a lower one lets running work finish and
        starts nothing new until the running count is under the new cap.

        Args:
            limit: A positive integer, or ``None`` for no cap.

        Raises:
            ConfigurationError: If ``limit`` is not a positive integer or ``None``.
        """
        self._limit = check_limit("limit", limit)
        self._capacity = _INF if limit is None else limit
        self._grant_slots()
        self._spawn_submit_workers()

    @property
    def rate(self) -> float | None:
        """Starts per second, the bucket's refill rate (``None``: no cap)."""
        return self._rate

    @property
    def burst(self) -> float | None:
        """The rate bucket's capacity, the most starts at once (``None`` without a rate)."""
        return self._burst

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def stats(self) -> ExecutorStats:
        """Return counts worth graphing.

        Returns:
            An :class:`ExecutorStats` snapshot: ``running``, ``pending`` and the totals
            ``completed``, ``failed`` and ``cancelled`` since creation.
        """
        return ExecutorStats(
            running=self._running,
            pending=self._pending + len(self._fifo) + len(self._queue),
            completed=self._completed,
            failed=self._failed,
            cancelled=self._cancelled,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        rate = "" if self._rate is None else f" rate={self._rate}/s burst={self._burst}"
        return f"<TaskExecutor {state} limit={self._limit}{rate} {self.stats()}>"

    # -- the slot gate (the executor-wide cap) and the rate --------------------------------

    def _grant_slots(self) -> None:
        waiters = self._slot_waiters
        while waiters and self._active < self._capacity:
            waiter = heapq.heappop(waiters)[2]
            if waiter.done():
                self._stale_slots -= 1
                continue
            self._active += 1
            waiter.set_result(True)

    def _leave(self) -> None:
        self._active -= 1
        if self._slot_waiters:
            self._grant_slots()

    async def _wait_slot(self, priority: float) -> None:
        if self._closed:
            raise ExecutorClosedError("the executor is closed")
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._slot_waiters, (priority, self._seq(), waiter))
        self._grant_slots()  # maybe a slot is free and only stale waiters were queued
        try:
            granted = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self._leave()  # granted, then cancelled: hand the slot on
            else:
                waiter.cancel()
                self._stale_slots += 1
                if self._stale_slots > 64 and self._stale_slots * 2 > len(self._slot_waiters):
                    self._slot_waiters = [e for e in self._slot_waiters if not e[2].done()]
                    heapq.heapify(self._slot_waiters)
                    self._stale_slots = 0
            raise
        if not granted:
            raise ExecutorClosedError("the executor was closed while the work waited to start")

    async def _pace_or_leave(self) -> None:
        """Take a token of the rate, waiting for it; give the slot back if cancelled."""
        now = asyncio.get_running_loop().time()
        tat = (self._tat if self._tat > now else now) + self._interval
        self._tat = tat
        start = tat - self._window
        if start <= now:
            return
        try:
            await asyncio.sleep(start - now)
        except BaseException:
            if self._tat == tat:
                self._tat = tat - self._interval  # the last reservation: give the token back
            self._leave()
            raise

    async def _enter(self, priority: float = 0) -> None:
        if self._closed:
            raise ExecutorClosedError("the executor is closed")
        if self._active < self._capacity and not self._slot_waiters:
            self._active += 1
        else:
            self._pending += 1
            try:
                await self._wait_slot(priority)
            finally:
                self._pending -= 1
        if self._interval:
            await self._pace_or_leave()

    # -- run -------------------------------------------------------------------------------

    @overload
    async def run(
        self,
        awaitable: Awaitable[T],
        /,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the API the issue asks for
    ) -> T: ...

    @overload
    async def run(
        self,
        func: Callable[..., Awaitable[T]],
        /,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
        **kwargs: Any,
    ) -> T: ...

    async def run(
        self,
        awaitable: Awaitable[T] | Callable[..., Awaitable[T]],
        /,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
        **kwargs: Any,
    ) -> T:
        """Run one piece of work under the executor's cap and rate, and return its result.

        ``run(coro)`` awaits an awaitable; ``run(async_fn, *args, **kwargs)`` calls the
        function once a slot is free. The work runs in the caller's task: its own exception
        reaches the caller unchanged (an :class:`~mtaio.exceptions.MTAIOError` stays that
        error, so retry loops see it), and cancelling the caller cancels it.

        Args:
            awaitable: An awaitable, or an async callable to call with ``args``/``kwargs``.
            *args: Positional arguments for the callable.
            timeout: Seconds the work may take once started; ``None``: no limit.
            **kwargs: Keyword arguments for the callable.

        Returns:
            What the work returned.

        Raises:
            ConfigurationTypeError: If ``awaitable`` is neither awaitable nor callable, if
                arguments are given with an awaitable, or the callable returns no awaitable.
            ConfigurationError: If ``timeout`` is not a positive number.
            TimeoutError: ``mtaio.exceptions.TimeoutError`` (also the builtin) if the work
                took longer than ``timeout``.
            ExecutorClosedError: If the executor is closed.
        """
        func: Callable[..., Awaitable[T]] | None = None
        if inspect.isawaitable(awaitable):
            if args or kwargs:
                discard(awaitable)
                raise ConfigurationTypeError(
                    "run(awaitable) takes no arguments for it; pass a function to call instead"
                )
        elif callable(awaitable):
            func = awaitable
        else:
            raise ConfigurationTypeError(
                f"awaitable must be an awaitable or an async callable, got {awaitable!r}"
            )
        try:
            if timeout is not None:
                require_positive("timeout", timeout)
            await self._enter(0)
        except BaseException:
            discard(awaitable)
            raise
        self._running += 1
        try:
            if func is not None:
                work: Any = func(*args, **kwargs)
                if not inspect.isawaitable(work):
                    discard(work)
                    raise ConfigurationTypeError(
                        f"{func!r} returned {type(work).__name__}, not an awaitable"
                    )
            else:
                work = awaitable
            result: T = await (work if timeout is None else self._timed(work, timeout))
        except asyncio.CancelledError:
            self._cancelled += 1
            raise
        except BaseException:
            self._failed += 1
            raise
        finally:
            self._running -= 1
            self._leave()
        self._completed += 1
        return result

    @staticmethod
    async def _timed(work: Awaitable[T], timeout: float) -> T:  # noqa: ASYNC109
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await work
        except TimeoutError as error:
            if scope.expired() and not isinstance(error, MTAIOTimeoutError):
                raise MTAIOTimeoutError(
                    f"the work did not finish within {timeout} s", timeout=timeout
                ) from error
            raise

    # -- gather, map and the streams --------------------------------------------------------

    def _workers_for(self, limit: int | None, n: int | None) -> int:
        check_limit("limit", limit)
        if limit is None:
            limit = self._limit
        if limit is None:
            limit = n if n is not None else DEFAULT_MAP_LIMIT
        return max(1, min(limit, n) if n is not None else limit)

    @staticmethod
    def _mode(return_exceptions: bool, collect_errors: bool) -> int:
        if return_exceptions and collect_errors:
            raise ConfigurationTypeError(
                "return_exceptions and collect_errors are exclusive: choose one error mode"
            )
        return RETURN if return_exceptions else COLLECT if collect_errors else FAIL_FAST

    def _check_awaitables(self, aws: tuple[Any, ...]) -> None:
        for i, aw in enumerate(aws):
            if not inspect.isawaitable(aw):
                for other in aws:
                    discard(other)
                raise ConfigurationTypeError(f"aws[{i}] must be an awaitable, got {aw!r}")
        if self._closed:
            for aw in aws:
                discard(aw)
            raise ExecutorClosedError("the executor is closed")

    @overload
    async def gather(
        self,
        *aws: Awaitable[T],
        limit: int | None = None,
        return_exceptions: Literal[False] = False,
        collect_errors: bool = False,
    ) -> list[T]: ...

    @overload
    async def gather(
        self,
        *aws: Awaitable[T],
        limit: int | None = None,
        return_exceptions: bool,
        collect_errors: bool = False,
    ) -> list[T | BaseException]: ...

    async def gather(
        self,
        *aws: Awaitable[T],
        limit: int | None = None,
        return_exceptions: bool = False,
        collect_errors: bool = False,
    ) -> list[T] | list[T | BaseException]:
        """Await every awaitable, at most ``limit`` at once, and return results in input order.

        The error mode is one of three. By default it fails fast: on the first error the
        other work is cancelled and awaited, work not started is closed, and the error is
        raised. ``return_exceptions=True`` puts each error in its result's place.
        ``collect_errors=True`` runs everything and then raises a :class:`TaskErrorGroup`
        (an ``ExceptionGroup``: ``except*`` works) of every failure, in input order.

        Args:
            *aws: Awaitables (coroutines, futures, tasks).
            limit: The most awaited at once for this call (also bound by the executor's
                ``limit``); by default the executor's ``limit``, or all of them.
            return_exceptions: Return errors in place instead of raising.
            collect_errors: Run everything, then raise a :class:`TaskErrorGroup` of the errors.

        Returns:
            The results, in the order of ``aws``.

        Raises:
            ConfigurationError: If ``limit`` is not a positive integer, or an argument is
                not awaitable.
            ExecutorClosedError: If the executor is closed, before or during the call.
        """
        try:
            mode = self._mode(return_exceptions, collect_errors)
            workers = self._workers_for(limit, len(aws))
        except BaseException:
            for aw in aws:
                discard(aw)
            raise
        self._check_awaitables(aws)
        if not aws:
            return []
        self._pending += len(aws)
        batch = Batch(self, iter(aws), None, None, mode)
        batch.start(workers)
        await batch.wait()
        return batch.raise_or_results("gather")

    @overload
    async def map(
        self,
        func: Callable[..., Awaitable[R]],
        *iterables: Iterable[Any] | AsyncIterable[Any],
        limit: int | None = None,
        return_exceptions: Literal[False] = False,
        collect_errors: bool = False,
    ) -> list[R]: ...

    @overload
    async def map(
        self,
        func: Callable[..., Awaitable[R]],
        *iterables: Iterable[Any] | AsyncIterable[Any],
        limit: int | None = None,
        return_exceptions: bool,
        collect_errors: bool = False,
    ) -> list[R | BaseException]: ...

    async def map(
        self,
        func: Callable[..., Awaitable[R]],
        *iterables: Iterable[Any] | AsyncIterable[Any],
        limit: int | None = None,
        return_exceptions: bool = False,
        collect_errors: bool = False,
    ) -> list[R] | list[R | BaseException]:
        """Call ``func`` on each item (zipped across ``iterables``), ``limit`` at once.

        The inputs are consumed lazily, one item per start, so at most ``limit`` items are
        in flight whatever the input length; sync and async iterables are accepted and
        mixed. Results come back in input order; errors follow :meth:`gather`'s modes.

        Args:
            func: An async function taking one argument per iterable.
            *iterables: At least one (async) iterable; the shortest one ends the call.
            limit: The most calls running at once; by default the executor's ``limit``,
                else the input length when known, else ``DEFAULT_MAP_LIMIT`` (100).
            return_exceptions: Return errors in place instead of raising.
            collect_errors: Run everything, then raise a :class:`TaskErrorGroup` of the errors.

        Returns:
            ``[await func(*args) for args in zip(*iterables)]``, computed concurrently.

        Raises:
            ConfigurationError: If ``limit`` is not a positive integer, ``func`` is not
                callable or no iterable is given.
            ExecutorClosedError: If the executor is closed, before or during the call.
        """
        batch, workers = self._map_batch(func, iterables, limit, return_exceptions, collect_errors)
        batch.start(workers)
        await batch.wait()
        return batch.raise_or_results("map")

    def _map_batch(
        self,
        func: Callable[..., Awaitable[Any]],
        iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...],
        limit: int | None,
        return_exceptions: bool,
        collect_errors: bool,
        *,
        stream: bool = False,
    ) -> tuple[Batch, int]:
        require_callable("func", func)
        mode = self._mode(return_exceptions, collect_errors)
        if not iterables:
            raise ConfigurationTypeError("map needs at least one iterable")
        sizes = []
        for i, iterable in enumerate(iterables):
            if not isinstance(iterable, Iterable | AsyncIterable):
                raise ConfigurationTypeError(
                    f"iterables[{i}] must be an iterable or an async iterable, got {iterable!r}"
                )
            sizes.append(len(iterable) if isinstance(iterable, Sized) else None)
        n = None if None in sizes else min(s for s in sizes if s is not None)
        workers = self._workers_for(limit, n)
        if self._closed:
            raise ExecutorClosedError("the executor is closed")
        out: AsyncQueue[Any] | None = AsyncQueue(workers) if stream else None
        if all(isinstance(it, Iterable) for it in iterables):
            if len(iterables) == 1:  # no 1-tuples to build and unpack per item
                batch = Batch(self, iter(iterables[0]), None, func, mode, out)  # type: ignore[arg-type]
                batch.spread = False
                return batch, workers
            source: Iterator[Any] = zip(*iterables, strict=False)
            return Batch(self, source, None, func, mode, out), workers
        return Batch(self, None, azip(iterables), func, mode, out), workers

    def as_completed(
        self,
        *aws: Awaitable[T],
        limit: int | None = None,
        return_exceptions: bool = False,
    ) -> ResultStream[T]:
        """Await the awaitables, at most ``limit`` at once, yielding results as they finish.

        Args:
            *aws: Awaitables.
            limit: The most awaited at once; by default the executor's ``limit`` or all.
            return_exceptions: Yield errors in place instead of raising the first one.

        Returns:
            A :class:`ResultStream`: ``async with executor.as_completed(*aws) as results:
            async for value in results: ...``. An error stops the stream (the rest is
            cancelled) and is raised from the iteration.

        Raises:
            ConfigurationError: If ``limit`` is not a positive integer, or an argument is
                not awaitable.
        """
        try:
            mode = self._mode(return_exceptions, False)
            workers = self._workers_for(limit, len(aws))
        except BaseException:
            for aw in aws:
                discard(aw)
            raise
        self._check_awaitables(aws)
        self._pending += len(aws)
        out: AsyncQueue[Any] = AsyncQueue(workers)
        batch = Batch(self, iter(aws), None, None, mode, out)
        return ResultStream(batch, workers, out, "as_completed")

    def map_unordered(
        self,
        func: Callable[..., Awaitable[R]],
        *iterables: Iterable[Any] | AsyncIterable[Any],
        limit: int | None = None,
        return_exceptions: bool = False,
    ) -> ResultStream[R]:
        """Like :meth:`map`, but yield results as they finish: memory stays O(limit).

        Args:
            func: An async function taking one argument per iterable.
            *iterables: At least one (async) iterable; the shortest one ends the stream.
            limit: The most calls running at once (defaults as for :meth:`map`).
            return_exceptions: Yield errors in place instead of raising the first one.

        Returns:
            A :class:`ResultStream` of the results in completion order.

        Raises:
            ConfigurationError: If ``limit`` is not a positive integer, ``func`` is not
                callable or no iterable is given.
        """
        batch, workers = self._map_batch(
            func, iterables, limit, return_exceptions, False, stream=True
        )
        assert batch.out is not None
        return ResultStream(batch, workers, batch.out, "map_unordered")

    # -- submit ----------------------------------------------------------------------------

    def submit(self, awaitable: Awaitable[T], *, priority: float = 0) -> TaskHandle[T]:
        """Queue work to start as soon as the cap allows; pending work starts by priority.

        Needs a running event loop. Work starts in order of ``priority`` (lower first, as in
        :class:`PriorityQueue`), FIFO among equal priorities.

        Args:
            awaitable: The work.
            priority: A number (int or float, not NaN); lower starts first. Work given to
                ``run``/``gather``/``map`` waits for a slot beside it at priority ``0``.

        Returns:
            A :class:`TaskHandle` to await the result or cancel the work.

        Raises:
            ConfigurationTypeError: If ``awaitable`` is not awaitable, or ``priority`` is not
                an int or a float (a bool, a string and ``None`` are refused).
            ConfigurationError: If ``priority`` is NaN.
            ExecutorClosedError: If the executor is closed.
        """
        if type(awaitable) is not CoroutineType and not inspect.isawaitable(awaitable):
            raise ConfigurationTypeError(f"awaitable must be an awaitable, got {awaitable!r}")
        if type(priority) is not int:
            try:
                check_priority("priority", priority)
            except ConfigurationError:
                discard(awaitable)
                raise
        if self._closed:
            discard(awaitable)
            raise ExecutorClosedError("the executor is closed")
        handle = TaskHandle(awaitable, priority)
        # The default priority goes to a deque (O(1)); others to a heap (O(log n)). The
        # deque holds only equal priorities, so FIFO among equals holds across both.
        if priority == 0:
            self._fifo.append(handle)
        else:
            heapq.heappush(self._queue, (priority, self._seq(), handle))
        # No pending counter here: stats() counts the queued handles.
        if self._submit_workers < self._capacity and self._submit_workers < self._queued():
            self._spawn_submit_worker()
        return handle

    def _queued(self) -> int:
        return len(self._fifo) + len(self._queue)

    def _next_priority(self) -> float:
        if self._queue and (not self._fifo or self._queue[0][0] < 0):
            return self._queue[0][0]
        return 0

    def _pop_submitted(self) -> TaskHandle[Any]:
        queue = self._queue
        if queue and (not self._fifo or queue[0][0] < 0):
            return heapq.heappop(queue)[2]
        return self._fifo.popleft()

    def _spawn_submit_worker(self) -> None:
        self._submit_workers += 1
        task = asyncio.get_running_loop().create_task(self._submit_worker())
        task.add_done_callback(self._submit_worker_done)  # runs even if cancelled unstarted
        self._tasks.add(task)

    def _submit_worker_done(self, task: asyncio.Task[None]) -> None:
        self._submit_workers -= 1
        self._tasks.discard(task)
        if not self._closed:
            self._spawn_submit_workers()  # the cap rose, or work came in as we left

    def _spawn_submit_workers(self) -> None:
        while (
            not self._closed
            and self._submit_workers < self._capacity
            and self._submit_workers < self._queued()
        ):
            self._spawn_submit_worker()

    async def _submit_worker(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        fifo = self._fifo
        queue = self._queue
        try:
            while (fifo or queue) and self._submit_workers <= self._capacity:
                if self._active < self._capacity and not self._slot_waiters:
                    self._active += 1  # no await: the queue cannot have emptied meanwhile
                else:
                    await self._wait_slot(self._next_priority())
                    if not (fifo or queue):
                        self._leave()
                        break
                handle = self._pop_submitted() if queue else fifo.popleft()
                aw = handle._aw
                handle._aw = None  # type: ignore[assignment]  # the handle does not keep it
                if self._interval and not handle._state:
                    try:
                        await self._pace_or_leave()
                    except BaseException:
                        handle.cancel()
                        discard(aw)
                        raise
                if handle._state:  # cancelled before it started
                    self._leave()
                    self._cancelled += 1
                    discard(aw)
                    continue
                handle._state = RUNNING
                handle._worker = me
                self._running += 1
                try:
                    value = await aw
                except asyncio.CancelledError as error:
                    self._cancelled += 1
                    if handle._state == CANCELLED:
                        if me.uncancel() == 0:  # only the handle was cancelled: carry on
                            continue
                    elif not me.cancelling():
                        handle._settle(CANCELLED, error)  # the work cancelled itself
                        continue
                    if handle._state < DONE:
                        handle._settle(CANCELLED, None)  # the executor is closing
                    raise
                except BaseException as error:
                    self._failed += 1
                    if handle._state < DONE:
                        handle._settle(FAILED, error)
                    if not isinstance(error, Exception):
                        raise
                else:
                    if handle._state == RUNNING:
                        self._completed += 1
                        if handle._listeners is None:
                            handle._state = DONE  # _settle() inlined: the hot path
                            handle._result = value
                        else:
                            handle._settle(DONE, value)
                    else:  # cancelled while running, but the work swallowed the cancellation
                        me.uncancel()
                        self._cancelled += 1
                finally:
                    handle._worker = None
                    self._running -= 1
                    self._active -= 1  # _leave() inlined: this is the hot path
                    if self._slot_waiters:
                        self._grant_slots()
        except ExecutorClosedError:
            pass

    # -- threads ---------------------------------------------------------------------------

    async def run_in_thread(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call a blocking function in the thread pool, under the executor's cap and rate.

        The caller's :mod:`contextvars` are visible in the thread. Cancelling the caller
        stops waiting, but a function already running in its thread runs to its end
        (:meth:`close` waits for it).

        Args:
            func: A synchronous callable.
            *args: Positional arguments for it.
            **kwargs: Keyword arguments for it.

        Returns:
            What ``func`` returned.

        Raises:
            ConfigurationTypeError: If ``func`` is not callable.
            ExecutorClosedError: If the executor is closed.
        """
        require_callable("func", func)
        await self._enter(0)
        self._running += 1
        self._threads += 1
        try:
            pool = self._thread_pool
            if pool is None:
                if self._own_pool is None:
                    self._own_pool = ThreadPoolExecutor(
                        self._max_workers, thread_name_prefix="mtaio-core"
                    )
                pool = self._own_pool
            call = functools.partial(func, *args, **kwargs)
            context = contextvars.copy_context()
            result = await asyncio.get_running_loop().run_in_executor(pool, context.run, call)
        except asyncio.CancelledError:
            self._cancelled += 1
            raise
        except BaseException:
            self._failed += 1
            raise
        finally:
            self._threads -= 1
            self._running -= 1
            self._leave()
        self._completed += 1
        return result

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop: refuse new work, cancel what the executor owns, and wait for it to end.

        Submitted work not yet started is cancelled; running submitted work and the workers
        of running ``gather``/``map`` calls are cancelled and awaited (those calls raise
        :class:`ExecutorClosedError`); work waiting for a slot fails with that error. Work
        given to :meth:`run` runs in its caller's task and is left to finish. The thread
        pool the executor created is shut down, its threads joined. Calling it again
        does nothing more.
        """
        self._closed = True
        waiters, self._slot_waiters = self._slot_waiters, []
        for _, _, waiter in waiters:
            if not waiter.done():
                waiter.set_result(False)
        queue, self._queue = self._queue, []
        fifo, self._fifo = self._fifo, deque()
        for handle in itertools.chain(fifo, (entry[2] for entry in queue)):
            if handle.cancel():
                self._cancelled += 1
            discard(handle._aw)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        pool, self._own_pool = self._own_pool, None
        if pool is not None:
            await _shutdown(pool)
        logger.debug("TaskExecutor closed: %s", self.stats())

    async def __aenter__(self) -> TaskExecutor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _shutdown(pool: ThreadPoolExecutor) -> None:
    """Shut a thread pool down and join its threads without blocking the event loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def shutdown() -> None:
        pool.shutdown(wait=True)
        loop.call_soon_threadsafe(set_none, done)

    thread = threading.Thread(target=shutdown, name="mtaio-core-shutdown", daemon=True)
    thread.start()
    try:
        await asyncio.shield(done)
    finally:
        thread.join()
