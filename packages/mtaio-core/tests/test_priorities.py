"""Priorities are numbers, checked at the call: a bad one can no longer kill the workers."""

import asyncio
import inspect
import math
from typing import Any

import pytest

from mtaio.core import PriorityQueue, TaskExecutor
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

pytestmark = pytest.mark.looptime

NOT_NUMBERS = [None, "high", "5", True, False, (1, 2), b"1"]


@pytest.mark.parametrize("bad", NOT_NUMBERS)
async def test_submit_refuses_a_priority_that_is_not_a_number(bad: Any) -> None:
    async def job() -> int:
        return 1

    async with TaskExecutor(limit=2) as executor:
        queued = [executor.submit(job()) for _ in range(4)]  # default-priority work waits
        work = job()
        with pytest.raises(ConfigurationTypeError, match="priority"):
            executor.submit(work, priority=bad)
        assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED  # no "never awaited" warning
        # The crash loop of 0.1: the queued work never ran, the workers respawned forever.
        assert [await h for h in queued] == [1, 1, 1, 1]
        assert await executor.submit(job(), priority=-1) == 1
        assert executor.stats().completed == 5


async def test_submit_refuses_a_nan_priority_and_accepts_infinities() -> None:
    async def job(x: str) -> str:
        await asyncio.sleep(0.01)
        return x

    async with TaskExecutor(limit=1) as executor:
        work = job("nan")
        with pytest.raises(ConfigurationError, match=r"priority.*nan"):
            executor.submit(work, priority=math.nan)
        work.close()
        order: list[str] = []
        blocker = executor.submit(job("blocker"))
        handles = [
            executor.submit(job(name), priority=p)
            for name, p in [("last", math.inf), ("mid", 1.5), ("first", -math.inf), ("big", 10**12)]
        ]
        for h in handles:
            h.add_done_callback(lambda h: order.append(h.result()))
        await blocker
        await asyncio.gather(*(asyncio.ensure_future(_wait(h)) for h in handles))
        assert order == ["first", "mid", "big", "last"]


async def _wait(handle: Any) -> Any:
    return await handle


@pytest.mark.parametrize("bad", [*NOT_NUMBERS, math.nan])
async def test_priority_queue_refuses_a_bad_priority_and_keeps_working(bad: Any) -> None:
    queue: PriorityQueue[str] = PriorityQueue()
    await queue.put("b", priority=2)
    with pytest.raises(ConfigurationError, match="priority"):
        queue.put_nowait("x", priority=bad)
    with pytest.raises(ConfigurationError, match="priority"):
        await queue.put("x", priority=bad)
    queue.put_nowait("a", priority=-math.inf)
    await queue.put("c", priority=2.5)
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]
    assert queue.empty() and queue.stats().putters == 0
