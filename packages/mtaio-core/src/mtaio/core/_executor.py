"""TaskExecutor: run awaitables with a concurrency cap, a start rate and priorities.

How work runs, and why:

* ``run`` awaits the work inline, in the caller's task: no task is created, the work's own
  exception reaches the caller unchanged and cancelling the caller cancels the work.
* ``gather``, ``map`` and the streaming variants use a *worker pool*: ``limit`` worker tasks
  pull the next awaitable from a shared iterator and await it inline. 20k coroutines through
  a limit of 100 cost 100 tasks, not 20k (a task per item is what makes
  ``asyncio.gather`` + ``Semaphore`` several times slower than a hand-written pool).
* ``submit`` queues work in a priority heap served by up to ``limit`` worker tasks owned by
  the executor; each submission gets a :class:`TaskHandle` (a future, not a task).
* Every start, whatever its entry point, takes one *slot* of the executor-wide cap (``limit``)
  and one *token* of the rate (``rate``, ``burst``). Slot waiters are served by priority, FIFO among
  equals; the fast path (a free slot and nobody waiting) is a counter increment.
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
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sized,
)
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from types import CoroutineType, TracebackType
from typing import Any, Generic, Literal, TypeVar, final, overload

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    ExecutionError,
    require_callable,
    require_positive,
    require_positive_int,
)
from mtaio.exceptions import TimeoutError as MTAIOTimeoutError

from ._checks import check_priority
from ._errors import ExecutorClosedError, QueueClosedError, TaskErrorGroup
from ._queues import AsyncQueue

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("mtaio.core")

DEFAULT_MAP_LIMIT = 100
"""Workers used by ``map`` over inputs of unknown length when no limit is given anywhere."""

_INF = math.inf
_MISSING: Any = object()

# Error modes of a batch.
_FAIL_FAST, _RETURN, _COLLECT = 0, 1, 2


def _discard(aw: object) -> None:
    """Close a coroutine that will never run, so Python does not warn it was never awaited."""
    if inspect.iscoroutine(aw):
        aw.close()


def _check_limit(name: str, limit: int | None) -> int | None:
    if limit is not None:
        require_positive_int(name, limit)
    return limit


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_PENDING, _RUNNING, _DONE, _FAILED, _CANCELLED = 0, 1, 2, 3, 4


@final
class TaskHandle(Generic[T]):
    """The handle of work given to :meth:`TaskExecutor.submit`: await it for the result.

    It behaves like the future of a task: ``await handle`` returns the result or raises the
    work's exception; :meth:`cancel` cancels the work, whether it is still pending or already
    running; cancelling a task that awaits the handle cancels the work too (as with
    :class:`asyncio.Task`). Unlike a task it is not scheduled on its own: the executor's
    workers run it, and it creates a future only for awaiters that arrive before the end.
    """

    __slots__ = ("_aw", "_listeners", "_priority", "_result", "_state", "_worker")

    def __init__(self, aw: Awaitable[T], priority: float) -> None:
        self._aw = aw
        self._priority = priority
        self._state = _PENDING
        self._result: Any = None  # the value, or the exception when failed or cancelled
        # Futures of awaiters and done callbacks, created only when someone waits.
        self._listeners: list[asyncio.Future[None] | Callable[[TaskHandle[T]], object]] | None
        self._listeners = None
        self._worker: asyncio.Task[None] | None = None  # set while the work runs

    @property
    def priority(self) -> float:
        """The priority given to :meth:`TaskExecutor.submit` (lower starts first)."""
        return self._priority

    def __await__(self) -> Generator[Any, None, T]:
        if self._state == _DONE:
            return self._result  # type: ignore[no-any-return]
        if self._state < _DONE:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._listeners is None:
                self._listeners = [waiter]
            else:
                self._listeners.append(waiter)
            try:
                yield from waiter.__await__()
            except asyncio.CancelledError:
                if self._state < _DONE:
                    self.cancel()  # the awaiter was cancelled: so is the work, as for a task
                raise
        return self.result()

    def _settle(self, state: int, result: Any) -> None:
        self._state = state
        self._result = result
        listeners, self._listeners = self._listeners, None
        for listener in listeners or ():
            if isinstance(listener, asyncio.Future):
                if not listener.done():
                    if state == _CANCELLED:
                        listener.cancel()
                    else:
                        listener.set_result(None)
            else:
                asyncio.get_running_loop().call_soon(listener, self)

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel the work: it will not start, or, if running, it is cancelled.

        Returns:
            False if the work had already finished, True otherwise.
        """
        if self._state >= _DONE:
            return False
        worker = self._worker
        if worker is not None and worker is not asyncio.current_task():
            # The worker sees a CancelledError inside the work, finds the handle cancelled,
            # un-cancels itself and goes on with the next work. (Work cancelling its own
            # handle just runs on; its result is dropped.)
            worker.cancel()
        self._settle(_CANCELLED, asyncio.CancelledError(msg) if msg else None)
        return True

    def done(self) -> bool:
        """Return True once the work has finished, failed or been cancelled."""
        return self._state >= _DONE

    def cancelled(self) -> bool:
        """Return True if the work was cancelled."""
        return self._state == _CANCELLED

    def running(self) -> bool:
        """Return True while the work runs."""
        return self._state == _RUNNING

    def result(self) -> T:
        """Return the result of finished work.

        Raises:
            asyncio.CancelledError: If the work was cancelled.
            asyncio.InvalidStateError: If the work has not finished.
            BaseException: What the work raised, if it failed.
        """
        state = self._state
        if state == _DONE:
            return self._result  # type: ignore[no-any-return]
        if state == _FAILED:
            raise self._result
        if state == _CANCELLED:
            raise self._result or asyncio.CancelledError()
        raise asyncio.InvalidStateError("the work has not finished")

    def exception(self) -> BaseException | None:
        """Return the exception of failed work, or None if it succeeded.

        Raises:
            asyncio.CancelledError: If the work was cancelled.
            asyncio.InvalidStateError: If the work has not finished.
        """
        state = self._state
        if state == _FAILED:
            return self._result  # type: ignore[no-any-return]
        if state == _DONE:
            return None
        return self.result()  # type: ignore[return-value]  # raises

    def add_done_callback(self, callback: Callable[[TaskHandle[T]], object]) -> None:
        """Call ``callback(handle)`` soon after the work is done (at once if it is)."""
        if self._state >= _DONE:
            asyncio.get_running_loop().call_soon(callback, self)
        elif self._listeners is None:
            self._listeners = [callback]
        else:
            self._listeners.append(callback)

    def __repr__(self) -> str:
        state = ("pending", "running", "done", "failed", "cancelled")[self._state]
        return f"<TaskHandle {state} priority={self._priority!r}>"


class _Batch:
    """The worker pool of one ``gather``/``map``/stream call."""

    __slots__ = (
        "alive",
        "asource",
        "closes_leftovers",
        "done",
        "error",
        "errors",
        "ex",
        "func",
        "killed",
        "lock",
        "mode",
        "out",
        "results",
        "source",
        "spread",
        "stopped",
        "workers",
    )

    def __init__(
        self,
        ex: TaskExecutor,
        source: Iterator[Any] | None,
        asource: AsyncIterator[Any] | None,
        func: Callable[..., Awaitable[Any]] | None,
        mode: int,
        out: AsyncQueue[Any] | None = None,
    ) -> None:
        self.ex = ex
        self.source = source
        self.asource = asource
        self.lock = asyncio.Lock() if asource is not None else None
        self.func = func
        self.results: list[Any] = []
        self.out = out
        self.mode = mode
        self.error: BaseException | None = None
        self.errors: list[tuple[int, BaseException]] = []
        self.stopped = False
        self.killed = False
        self.workers: list[asyncio.Task[None]] = []
        self.alive = 0
        self.done: asyncio.Future[None] | None = None
        self.closes_leftovers = func is None
        self.spread = True  # call func(*item); False: the source yields single arguments

    def start(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.alive = n
        tasks = self.ex._tasks
        for _ in range(n):
            task = loop.create_task(self._work())
            # A done callback, not a `finally` in _work: a worker cancelled before its
            # first step never runs its body, but must still be counted out.
            task.add_done_callback(self._worker_done)
            tasks.add(task)
            self.workers.append(task)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        self.ex._tasks.discard(task)
        if task.cancelled() and not self.stopped:
            self.killed = True  # cancelled from outside: the executor was closed
        self.alive -= 1
        if self.alive == 0:
            assert self.done is not None
            _set_none(self.done)
            if self.out is not None:
                self.out.close()

    def stop(self) -> None:
        """Stop pulling work and cancel every other worker (fail-fast or early exit)."""
        if self.stopped:
            return
        self.stopped = True
        me = asyncio.current_task()
        for task in self.workers:
            if task is not me:
                task.cancel()

    def _keep(self, index: int, error: BaseException) -> bool:
        """Record a failed item; return True if the error takes the item's place."""
        if isinstance(error, Exception | asyncio.CancelledError):
            if self.mode == _RETURN:
                return True
            if self.mode == _COLLECT:
                self.errors.append((index, error))
                return True
        if self.error is None:
            self.error = error
        self.stop()
        return False

    async def _next_async(self) -> Any:
        assert self.lock is not None
        assert self.asource is not None
        async with self.lock:  # async generators cannot be advanced by two tasks at once
            if self.stopped:
                raise StopAsyncIteration
            return await anext(self.asource)

    async def _work(self) -> None:
        ex = self.ex
        me = asyncio.current_task()
        assert me is not None
        source = self.source
        func = self.func
        spread = self.spread
        results = self.results
        out = self.out
        try:
            while not self.stopped:
                # One executor slot per item (counter fast path), then pull, then the rate:
                # pacing before the pull would book start times for items that do not exist.
                if ex._active < ex._capacity and not ex._slot_waiters:
                    ex._active += 1
                else:
                    await ex._wait_slot(0)
                try:
                    if source is not None:
                        item = next(source)
                    else:
                        item = await self._next_async()
                except (StopIteration, StopAsyncIteration):
                    ex._leave()
                    break
                except BaseException:
                    ex._leave()
                    raise
                if ex._interval:
                    try:
                        await ex._pace_or_leave()
                    except BaseException:
                        if func is None:
                            ex._pending -= 1
                            _discard(item)
                        raise
                index = len(results)
                if out is None:
                    results.append(_MISSING)
                if func is None:
                    ex._pending -= 1
                ex._running += 1
                try:
                    if func is None:
                        value = await item
                    elif spread:
                        value = await func(*item)
                    else:
                        value = await func(item)
                except asyncio.CancelledError as error:
                    ex._running -= 1
                    ex._leave()
                    ex._cancelled += 1
                    if me.cancelling():
                        raise  # the worker itself is cancelled: stop, do not record
                    if not self._keep(index, error):  # the work cancelled itself
                        continue
                    value = error
                except BaseException as error:
                    ex._running -= 1
                    ex._leave()
                    ex._failed += 1
                    if not self._keep(index, error):
                        continue
                    value = error
                else:
                    ex._running -= 1
                    if ex._slot_waiters:
                        ex._leave()
                    else:
                        ex._active -= 1  # _leave() inlined: this is the hot path
                    ex._completed += 1
                if out is None:
                    results[index] = value
                else:
                    # Only the unordered streams have an `out` queue; it is bounded by the
                    # limit, so a slow consumer holds back the workers: memory stays O(limit).
                    await out.put(value)
        except asyncio.CancelledError:
            raise
        except QueueClosedError:
            pass  # the consumer closed the stream
        except BaseException as error:  # the gate refused (executor closed), or the source raised
            if self.error is None:
                self.error = error
            self.stop()

    async def wait(self) -> None:
        """Wait for every worker; if the waiting task is cancelled, stop them first."""
        assert self.done is not None
        try:
            await asyncio.shield(self.done)
        except asyncio.CancelledError:
            self.stop()
            await self.finish()
            raise
        await self.leftovers()

    async def finish(self) -> None:
        """Cancel and await every worker (also when the caller is being cancelled)."""
        for task in self.workers:
            task.cancel()
        pending = [t for t in self.workers if not t.done()]
        if pending:
            await asyncio.wait(pending)
        await self.leftovers()

    async def leftovers(self) -> None:
        """Close the awaitables that never started, and the async input, once workers are done."""
        if self.closes_leftovers and self.source is not None:
            self.closes_leftovers = False
            for item in self.source:
                self.ex._pending -= 1
                _discard(item)
        asource, self.asource = self.asource, None
        if asource is not None:
            await asource.aclose()  # type: ignore[attr-defined]

    def raise_or_results(self, what: str) -> list[Any]:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if self.killed:
            raise ExecutorClosedError(f"the executor was closed while {what} was running")
        if self.errors:
            errors: list[Exception] = []
            for index, error in sorted(self.errors, key=lambda pair: pair[0]):
                if not isinstance(error, Exception):  # work that cancelled itself
                    wrapped = ExecutionError(f"{what} task {index} cancelled itself")
                    wrapped.__cause__ = error
                    error = wrapped
                errors.append(error)
            self.errors = []
            raise TaskErrorGroup(
                f"{len(errors)} of the {len(self.results)} {what} tasks failed", errors
            )
        return self.results


@final
class ResultStream(Generic[T]):
    """Results in completion order, from ``as_completed`` or ``map_unordered``.

    Iterate it with ``async for``. Use it as an async context manager (or call
    :meth:`aclose`) when you may stop early: leaving cancels the work still running. The
    work starts on the first iteration. At most ``limit`` results are buffered: a slow
    consumer holds back the workers.
    """

    __slots__ = ("_batch", "_out", "_started", "_what", "_workers")

    def __init__(self, batch: _Batch, workers: int, out: AsyncQueue[Any], what: str) -> None:
        self._batch = batch
        self._workers = workers
        self._out = out
        self._started = False
        self._what = what

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._batch.start(self._workers)

    def __aiter__(self) -> ResultStream[T]:
        return self

    async def __anext__(self) -> T:
        if not self._started and self._batch.ex._closed:
            await self.aclose()
            raise ExecutorClosedError("the executor is closed")
        self._start()
        try:
            value: T = await self._out.get()
            return value
        except QueueClosedError:
            pass
        except BaseException:
            await self.aclose()
            raise
        await self._batch.wait()
        self._batch.raise_or_results(self._what)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop: cancel the work still running and wait for it; close what never started."""
        batch = self._batch
        self._out.close()
        if self._started:
            batch.stop()
            await batch.finish()
        else:
            self._started = True
            await batch.leftovers()

    async def __aenter__(self) -> ResultStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


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
        self._limit = _check_limit("limit", limit)
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
        self._limit = _check_limit("limit", limit)
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
                _discard(awaitable)
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
            _discard(awaitable)
            raise
        self._running += 1
        try:
            if func is not None:
                work: Any = func(*args, **kwargs)
                if not inspect.isawaitable(work):
                    _discard(work)
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
        _check_limit("limit", limit)
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
        return _RETURN if return_exceptions else _COLLECT if collect_errors else _FAIL_FAST

    def _check_awaitables(self, aws: tuple[Any, ...]) -> None:
        for i, aw in enumerate(aws):
            if not inspect.isawaitable(aw):
                for other in aws:
                    _discard(other)
                raise ConfigurationTypeError(f"aws[{i}] must be an awaitable, got {aw!r}")
        if self._closed:
            for aw in aws:
                _discard(aw)
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
                _discard(aw)
            raise
        self._check_awaitables(aws)
        if not aws:
            return []
        self._pending += len(aws)
        batch = _Batch(self, iter(aws), None, None, mode)
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
    ) -> tuple[_Batch, int]:
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
                batch = _Batch(self, iter(iterables[0]), None, func, mode, out)  # type: ignore[arg-type]
                batch.spread = False
                return batch, workers
            source: Iterator[Any] = zip(*iterables, strict=False)
            return _Batch(self, source, None, func, mode, out), workers
        return _Batch(self, None, _azip(iterables), func, mode, out), workers

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
                _discard(aw)
            raise
        self._check_awaitables(aws)
        self._pending += len(aws)
        out: AsyncQueue[Any] = AsyncQueue(workers)
        batch = _Batch(self, iter(aws), None, None, mode, out)
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
                _discard(awaitable)
                raise
        if self._closed:
            _discard(awaitable)
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
                        _discard(aw)
                        raise
                if handle._state:  # cancelled before it started
                    self._leave()
                    self._cancelled += 1
                    _discard(aw)
                    continue
                handle._state = _RUNNING
                handle._worker = me
                self._running += 1
                try:
                    value = await aw
                except asyncio.CancelledError as error:
                    self._cancelled += 1
                    if handle._state == _CANCELLED:
                        if me.uncancel() == 0:  # only the handle was cancelled: carry on
                            continue
                    elif not me.cancelling():
                        handle._settle(_CANCELLED, error)  # the work cancelled itself
                        continue
                    if handle._state < _DONE:
                        handle._settle(_CANCELLED, None)  # the executor is closing
                    raise
                except BaseException as error:
                    self._failed += 1
                    if handle._state < _DONE:
                        handle._settle(_FAILED, error)
                    if not isinstance(error, Exception):
                        raise
                else:
                    if handle._state == _RUNNING:
                        self._completed += 1
                        if handle._listeners is None:
                            handle._state = _DONE  # _settle() inlined: the hot path
                            handle._result = value
                        else:
                            handle._settle(_DONE, value)
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
            _discard(handle._aw)
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
        loop.call_soon_threadsafe(_set_none, done)

    thread = threading.Thread(target=shutdown, name="mtaio-core-shutdown", daemon=True)
    thread.start()
    try:
        await asyncio.shield(done)
    finally:
        thread.join()


async def _azip(iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...]) -> AsyncIterator[Any]:
    """Zip sync and async iterables into one async iterator of tuples."""
    iterators: list[Iterator[Any] | AsyncIterator[Any]] = [
        aiter(it) if isinstance(it, AsyncIterable) else iter(it) for it in iterables
    ]
    try:
        while True:
            row = []
            for it in iterators:
                if isinstance(it, AsyncIterator):
                    row.append(await anext(it))
                else:
                    row.append(next(it))
            yield tuple(row)
    except (StopIteration, StopAsyncIteration):
        return
    finally:
        for it in iterators:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
