"""Time-based operators, on virtual loop time (looptime): no real sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mtaio.data import Stream


async def timed(
    schedule: list[tuple[float, int]], log: list[str] | None = None
) -> AsyncIterator[int]:
    """Yield each value after waiting its delay (relative to the previous item)."""
    try:
        for delay, value in schedule:
            await asyncio.sleep(delay)
            yield value
    finally:
        if log is not None:
            log.append("closed")


async def stamped(stream: Stream[Any]) -> list[tuple[float, Any]]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    return [(round(loop.time() - start, 3), x) async for x in stream]


@pytest.mark.looptime
async def test_batch_by_time_emits_after_the_first_item_waits() -> None:
    s = Stream(timed([(0, 1), (0.4, 2), (0.4, 3), (1.0, 4), (0.1, 5)])).batch_by_time(1.0)
    # batch 1 starts at t=0 -> flushed at t=1.0 with [1,2,3]; 4 arrives at 1.8, 5 at 1.9,
    # the input ends at 1.9 -> [4,5] flushed then.
    assert await stamped(s) == [(1.0, [1, 2, 3]), (1.9, [4, 5])]


@pytest.mark.looptime
async def test_size_or_timeout_batcher() -> None:
    s = Stream(timed([(0, 1), (0.1, 2), (0.1, 3), (0.1, 4), (5, 5)])).batch(3, timeout=1.0)
    assert await stamped(s) == [(0.2, [1, 2, 3]), (1.3, [4]), (5.3, [5])]


@pytest.mark.looptime
async def test_timed_batch_closes_source_when_stopped() -> None:
    log: list[str] = []
    s = Stream(timed([(0, 1), (0.1, 2), (10, 3)], log)).batch_by_time(1.0).take(1)
    assert await s.to_list() == [[1, 2]]
    assert log == ["closed"]


@pytest.mark.looptime
async def test_throttle_spaces_items() -> None:
    s = Stream(range(4)).throttle(2)  # 2 per second -> every 0.5 s
    assert await stamped(s) == [(0.0, 0), (0.5, 1), (1.0, 2), (1.5, 3)]


@pytest.mark.looptime
async def test_throttle_does_not_delay_slow_sources() -> None:
    s = Stream(timed([(0, 1), (2, 2)])).throttle(1)
    assert await stamped(s) == [(0.0, 1), (2.0, 2)]


@pytest.mark.looptime
async def test_debounce_keeps_the_last_of_each_burst() -> None:
    schedule = [(0, 1), (0.1, 2), (0.1, 3), (1.0, 4), (0.1, 5), (2.0, 6)]
    s = Stream(timed(schedule)).debounce(0.5)
    # burst 1,2,3 ends at 0.2 -> 3 emitted at 0.7; 4 (1.2), 5 (1.3) -> 5 at 1.8; 6 at 3.3 is last
    assert await stamped(s) == [(0.7, 3), (1.8, 5), (3.3, 6)]


@pytest.mark.looptime
async def test_debounce_closes_source_when_stopped() -> None:
    log: list[str] = []
    s = Stream(timed([(0, 1), (1, 2), (1, 3), (10, 4)], log)).debounce(0.5).take(2)
    assert await s.to_list() == [1, 2]
    assert log == ["closed"]


@pytest.mark.looptime
async def test_merge_interleaves_by_arrival() -> None:
    a = Stream(timed([(0.1, 1), (0.2, 3)]))
    b = timed([(0.2, 2), (0.2, 4)])
    assert await a.merge(b).to_list() == [1, 2, 3, 4]


@pytest.mark.looptime
async def test_cancelling_a_consumer_leaves_no_task() -> None:
    log: list[str] = []
    before = len(asyncio.all_tasks())

    async def consume() -> None:
        s = Stream(timed([(0.0, 1)] + [(1.0, i) for i in range(100)], log))
        async for _ in s.buffer(3).batch_by_time(5).debounce(1):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(asyncio.all_tasks()) == before
    assert log == ["closed"]
