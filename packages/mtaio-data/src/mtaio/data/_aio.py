"""Async-iterator plumbing shared by streams and pipelines.

Every helper here owns what it starts: the tasks it creates are cancelled and awaited, and
the upstream iterator is closed, when the consumer stops early, fails or is cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


END: Final[Any] = _Sentinel("END")


class _Failure:
    """An exception travelling through a queue from a pump task to its consumer."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def aclose(it: object) -> None:
    """Close an async iterator if it can be closed (async generators can)."""
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()


async def next_or_end(it: AsyncIterator[T]) -> Any:
    """Return the next item of ``it``, or :data:`END` when it is exhausted.

    Tasks cannot carry ``StopAsyncIteration`` cleanly, so racing helpers wrap ``__anext__``.
    """
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return END


async def cancel_and_wait(tasks: Any) -> None:
    """Cancel ``tasks`` and wait until they are done, retrieving their exceptions."""
    tasks = [t for t in tasks if not t.done()] + [t for t in tasks if t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def buffered(it: AsyncIterator[T], size: int) -> AsyncGenerator[T, None]:
    """Read ``it`` ahead in a task, holding at most ``size`` items not yet taken.

    Backpressure: the pump stops pulling from upstream while ``size`` items wait. The
    consumer takes every waiting item at once (so at most ``2 * size`` are in memory) and
    the pump refills while they are handed out: one task switch per batch of items instead
    of two per item, which is what a queue of single items would cost.
    """
    waiting: deque[T] = deque()
    has_data = asyncio.Event()
    has_space = asyncio.Event()
    failure: list[BaseException] = []
    finished = False

    async def pump() -> None:
        nonlocal finished
        try:
            async for item in it:
                while len(waiting) >= size:
                    has_space.clear()
                    await has_space.wait()
                waiting.append(item)
                has_data.set()
        except Exception as exc:  # handed to the consumer, who re-raises it
            failure.append(exc)
        finally:
            finished = True
            has_data.set()
            await aclose(it)

    task = asyncio.get_running_loop().create_task(pump())
    try:
        while True:
            if not waiting:
                if finished:
                    if failure:
                        raise failure[0]
                    return
                has_data.clear()
                await has_data.wait()
                continue
            taken = list(waiting)
            waiting.clear()
            has_space.set()
            for item in taken:
                yield item
    finally:
        await cancel_and_wait([task])


class Failures(Exception):
    """Several failures of one :func:`ordered_map` run (``collect=True``), first one first."""

    def __init__(self, errors: list[Exception]) -> None:
        super().__init__(errors)
        self.errors = errors


async def ordered_map(
    it: AsyncIterator[T],
    fn: Callable[[T], Awaitable[U]],
    concurrency: int,
    window: int | None = None,
    *,
    collect: bool = False,
) -> AsyncGenerator[U, None]:
    """Apply ``fn`` to up to ``concurrency`` items at once and yield results in input order.

    Up to ``window`` (at least ``concurrency``) results may wait behind a slow head item, so
    one slow item stalls the others only once that many are done or running.

    On the first error the calls still running are cancelled. With ``collect``, the errors
    of calls that had failed as well are not dropped: if there are any, :class:`Failures`
    holding every error (the first one first) is raised instead of the first error alone.
    """
    window = max(window or concurrency, concurrency)
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(concurrency) if window > concurrency else None

    async def limited(item: T) -> U:
        assert semaphore is not None
        async with semaphore:
            return await fn(item)

    run = fn if semaphore is None else limited
    pending: deque[asyncio.Task[U]] = deque()
    try:
        async for item in it:
            pending.append(loop.create_task(run(item)))  # type: ignore[arg-type]
            # Hand over what is already finished before pulling more (lower latency).
            while pending and (len(pending) >= window or pending[0].done()):
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    except Exception as first:
        if not collect or not pending:
            raise
        await cancel_and_wait(pending)
        errors = list(first.errors) if isinstance(first, Failures) else [first]
        for task in pending:
            if not task.cancelled():
                error = task.exception()
                if isinstance(error, Exception):
                    errors.append(error)
        pending.clear()
        if len(errors) == 1:
            raise
        raise Failures(errors) from None
    finally:
        await cancel_and_wait(pending)
        await aclose(it)
