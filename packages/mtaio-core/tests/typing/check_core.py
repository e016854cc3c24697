"""Type-only checks of the public generics and overloads (mypy reads this; pytest does not)."""

from typing import assert_type

from mtaio.core import AsyncQueue, LIFOQueue, PriorityQueue, ResultStream, TaskExecutor, TaskHandle


async def work(x: int) -> str:
    return str(x)


async def checks(executor: TaskExecutor) -> None:
    assert_type(await executor.run(work(1)), str)
    assert_type(await executor.run(work, 1), str)
    assert_type(await executor.gather(work(1), work(2)), list[str])
    assert_type(await executor.gather(work(1), return_exceptions=True), list[str | BaseException])
    assert_type(executor.submit(work(1), priority=2), TaskHandle[str])
    assert_type(await executor.submit(work(1)), str)
    assert_type(executor.as_completed(work(1)), ResultStream[str])
    assert_type(executor.map_unordered(work, [1, 2]), ResultStream[str])
    assert_type(await executor.run_in_thread(len, "abc"), int)
    # map returns the function's result type, not list[Any].
    assert_type(await executor.map(work, [1, 2]), list[str])
    assert_type(await executor.map(work, [1], collect_errors=True), list[str])
    assert_type(await executor.map(work, [1], return_exceptions=True), list[str | BaseException])
    assert_type(executor.submit(work(1), priority=-1.5).priority, float)
    executor.submit(work(1), priority="high")  # type: ignore[arg-type]
    executor.submit(work(1), priority=None)  # type: ignore[arg-type]

    queue = AsyncQueue[int]()
    assert_type(await queue.get(), int)
    assert_type(LIFOQueue[bytes]().get_nowait(), bytes)
    prio = PriorityQueue[str](maxsize=3)
    await prio.put("x", priority=1)
    await prio.put("x", priority=None)  # type: ignore[arg-type]
    async for item in prio:
        assert_type(item, str)
