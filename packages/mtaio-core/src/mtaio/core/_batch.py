"""The worker pool behind ``gather``, ``map`` and the result streams, and ResultStream.

``limit`` worker tasks pull the next awaitable (or argument tuple) from a shared iterator
and await it inline: 20k coroutines through a limit of 100 cost 100 tasks, not 20k.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

from mtaio.exceptions import ExecutionError

from ._errors import ExecutorClosedError, QueueClosedError, TaskErrorGroup
from ._queues import AsyncQueue
from ._support import discard, set_none

if TYPE_CHECKING:
    from ._executor import TaskExecutor

T = TypeVar("T")

MISSING: Any = object()

# Error modes of a batch.
FAIL_FAST, RETURN, COLLECT = 0, 1, 2


class Batch:
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
            set_none(self.done)
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
            if self.mode == RETURN:
                return True
            if self.mode == COLLECT:
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
                            discard(item)
                        raise
                index = len(results)
                if out is None:
                    results.append(MISSING)
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
                discard(item)
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

    def __init__(self, batch: Batch, workers: int, out: AsyncQueue[Any], what: str) -> None:
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


async def azip(iterables: tuple[Iterable[Any] | AsyncIterable[Any], ...]) -> AsyncIterator[Any]:
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
