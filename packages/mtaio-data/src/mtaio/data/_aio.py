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
    """Read ``it`` ahead in a task, holding at most ``size`` items (plus one in hand).

    The bounded queue is the backpressure: when the consumer is slow, the pump blocks on
    ``put`` and stops pulling from upstream.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue(size)

    async def pump() -> None:
        try:
            async for item in it:
                await queue.put(item)
        except Exception as exc:  # handed to the consumer, who re-raises it
            await queue.put(_Failure(exc))
            return
        finally:
            await aclose(it)
        await queue.put(END)

    task = asyncio.get_running_loop().create_task(pump())
    try:
        get = queue.get
        while True:
            item = await get()
            if item is END:
                break
            if type(item) is _Failure:
                raise item.error
            yield item
    finally:
        await cancel_and_wait([task])


async def ordered_map(
    it: AsyncIterator[T],
    fn: Callable[[T], Awaitable[U]],
    concurrency: int,
    window: int | None = None,
) -> AsyncGenerator[U, None]:
    """Apply ``fn`` to up to ``concurrency`` items at once and yield results in input order.

    Up to ``window`` (at least ``concurrency``) results may wait behind a slow head item, so
    one slow item stalls the others only once that many are done or running.
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
    finally:
        await cancel_and_wait(pending)
        await aclose(it)
