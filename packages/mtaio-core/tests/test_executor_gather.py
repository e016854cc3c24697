import asyncio
import inspect
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest

from mtaio.core import DEFAULT_MAP_LIMIT, ExecutorClosedError, TaskErrorGroup, TaskExecutor
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

# Virtual time: the sleeps that let work progress cannot race a loaded machine.
pytestmark = pytest.mark.looptime

Leftovers = Callable[[], set[asyncio.Task[Any]]]


def closed(coro: Coroutine[Any, Any, Any]) -> bool:
    return inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_gather_returns_results_in_input_order(probe: Any) -> None:
    async with TaskExecutor() as executor:
        delays = [0.005, 0.001, 0.003, 0.0, 0.002]
        results = await executor.gather(*(probe.job(i, d) for i, d in enumerate(delays)))
        assert results == [0, 1, 2, 3, 4]
        assert probe.peak == 5  # no limit anywhere: everything at once
        assert await executor.gather() == []


async def test_gather_never_exceeds_its_limit(probe: Any) -> None:
    async with TaskExecutor() as executor:
        results = await executor.gather(*(probe.job(i, 0.001) for i in range(50)), limit=7)
        assert results == list(range(50))
        assert probe.peak == 7
        assert executor.stats().completed == 50
        assert executor.stats().pending == 0


async def test_the_executor_limit_caps_concurrent_gathers(probe: Any) -> None:
    async with TaskExecutor(limit=4) as executor:
        first, second = await asyncio.gather(
            executor.gather(*(probe.job(i, 0.001) for i in range(20))),
            executor.gather(*(probe.job(i, 0.001) for i in range(20)), limit=10),
        )
        assert first == second == list(range(20))
        assert probe.peak == 4


async def test_fail_fast_cancels_and_awaits_the_siblings(probe: Any, leftovers: Leftovers) -> None:
    boom = ValueError("boom")
    async with TaskExecutor() as executor:
        never = probe.job("never", 0)
        aws = [probe.job("slow", 10), probe.fail(boom, 0.01), probe.job("slower", 20), never]
        with pytest.raises(ValueError, match="boom") as info:
            await executor.gather(*aws, limit=3)
        assert info.value is boom
        assert sorted(probe.cancelled) == ["slow", "slower"]  # cancelled and awaited
        assert probe.now == 0
        assert closed(never) and "never" not in probe.started  # closed, never started
        assert not leftovers()
        stats = executor.stats()
        assert (stats.failed, stats.cancelled, stats.pending) == (1, 2, 0)


async def test_return_exceptions_puts_errors_in_place(probe: Any) -> None:
    error = KeyError("k")
    async with TaskExecutor() as executor:
        results = await executor.gather(
            probe.job(1), probe.fail(error), probe.job(3), limit=2, return_exceptions=True
        )
        assert results == [1, error, 3]


async def test_collect_errors_raises_a_group_of_every_failure(probe: Any) -> None:
    first, second = ValueError("first"), KeyError("second")
    async with TaskExecutor() as executor:
        with pytest.raises(TaskErrorGroup) as info:
            await executor.gather(
                probe.fail(second, 0.01),
                probe.job(2),
                probe.fail(first),
                limit=1,
                collect_errors=True,
            )
        assert list(info.value.exceptions) == [second, first]  # input order
        assert probe.finished == [2]  # the others ran to the end
        with pytest.raises(ConfigurationTypeError, match="exclusive"):
            await executor.gather(probe.job(1), return_exceptions=True, collect_errors=True)


async def test_work_that_cancels_itself_counts_as_a_failure() -> None:
    async def cancels_itself() -> None:
        raise asyncio.CancelledError

    async with TaskExecutor() as executor:
        results = await executor.gather(
            cancels_itself(), asyncio.sleep(0, 1), return_exceptions=True
        )
        assert isinstance(results[0], asyncio.CancelledError)
        assert results[1] == 1
        with pytest.raises(asyncio.CancelledError):
            await executor.gather(cancels_itself())


async def test_a_cancelled_caller_leaves_no_task(probe: Any, leftovers: Leftovers) -> None:
    async with TaskExecutor() as executor:
        later = probe.job("later", 0)
        call = asyncio.ensure_future(
            executor.gather(probe.job(1, 10), probe.job(2, 10), later, limit=2)
        )
        await asyncio.sleep(0.01)
        assert probe.now == 2
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert probe.now == 0
        assert sorted(probe.cancelled) == [1, 2]
        assert closed(later)
        assert not leftovers()


async def test_close_during_gather_raises_executor_closed(probe: Any, leftovers: Leftovers) -> None:
    executor = TaskExecutor()
    call = asyncio.ensure_future(executor.gather(probe.job(1, 10), probe.job(2, 10)))
    await asyncio.sleep(0.01)
    await executor.close()
    with pytest.raises(ExecutorClosedError):
        await call
    assert not leftovers()
    coro = probe.job(3)
    with pytest.raises(ExecutorClosedError):
        await executor.gather(coro)
    assert closed(coro)


async def test_gather_bad_input_closes_every_coroutine(probe: Any) -> None:
    async with TaskExecutor() as executor:
        coros = [probe.job(1), probe.job(2)]
        with pytest.raises(ConfigurationTypeError, match=r"aws\[1\]"):
            await executor.gather(coros[0], 42, coros[1])  # type: ignore[call-overload]
        coros.append(probe.job(3))
        with pytest.raises(ConfigurationError, match="limit"):
            await executor.gather(coros[2], limit=0)
        assert all(closed(c) for c in coros)


async def test_gather_accepts_futures_and_tasks() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    loop.call_later(0.001, fut.set_result, 5)
    async with TaskExecutor() as executor:
        assert await executor.gather(fut, asyncio.ensure_future(asyncio.sleep(0, 6))) == [5, 6]


# -- map -----------------------------------------------------------------------------------


async def test_map_over_sync_and_async_iterables(probe: Any) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def numbers(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async with TaskExecutor() as executor:
        assert await executor.map(probe.job, range(10), limit=3) == list(range(10))
        assert probe.peak == 3
        assert await executor.map(add, range(5), numbers(4), limit=2) == [0, 2, 4, 6]
        assert await executor.map(add, numbers(3), numbers(3)) == [0, 2, 4]
        assert await executor.map(add, [1], (x for x in [2])) == [3]


@pytest.mark.slow
async def test_map_is_lazy_over_a_million_items() -> None:
    # Memory proportional to the limit: items are pulled only when a slot is free, so the
    # number pulled but not yet finished never exceeds the limit, over a million items.
    n, limit = 1_000_000, 50
    pulled = done = lead = 0

    def items() -> Iterator[int]:
        nonlocal pulled, lead
        for i in range(n):
            pulled += 1
            lead = max(lead, pulled - done)
            yield i

    growth = 0

    async def work(i: int) -> None:
        nonlocal done, growth
        done += 1
        if done % 10_000 == 0:
            growth = max(growth, sys.getallocatedblocks() - baseline)
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the other workers interleave

    async with TaskExecutor() as executor:
        baseline = sys.getallocatedblocks()
        results = await executor.map(work, items(), limit=limit)
    assert len(results) == n
    assert pulled == done == n
    assert lead <= limit
    # The interpreter's live objects grow by a bounded amount, not by one per item (a
    # coroutine per item created up front, as asyncio.gather needs, is > 1M objects).
    assert growth < 10_000, growth


async def test_map_default_limits() -> None:
    seen: list[int] = []
    peak = now = 0

    async def work(i: int) -> int:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.001)
        now -= 1
        seen.append(i)
        return i

    async with TaskExecutor() as executor:
        await executor.map(work, iter(range(DEFAULT_MAP_LIMIT + 20)))
        assert peak == DEFAULT_MAP_LIMIT  # unknown length, no limit given
        peak = 0
        await executor.map(work, range(30))
        assert peak == 30  # known length: all at once
    async with TaskExecutor(limit=4) as executor:
        peak = 0
        await executor.map(work, range(30))
        assert peak == 4


async def test_map_errors_follow_the_gather_modes(probe: Any) -> None:
    async def maybe(i: int) -> int:
        await asyncio.sleep(0)
        if i % 3 == 1:
            raise ValueError(i)
        return i

    async with TaskExecutor() as executor:
        with pytest.raises(ValueError, match="1"):
            await executor.map(maybe, range(10), limit=1)
        results = await executor.map(maybe, range(5), return_exceptions=True)
        assert [r if isinstance(r, int) else "E" for r in results] == [0, "E", 2, 3, "E"]
        with pytest.raises(TaskErrorGroup) as info:
            await executor.map(maybe, range(7), limit=2, collect_errors=True)
        assert [e.args[0] for e in info.value.exceptions] == [1, 4]


async def test_map_stops_an_async_source_on_failure(leftovers: Leftovers) -> None:
    closed_source = False

    async def source() -> AsyncIterator[int]:
        nonlocal closed_source
        try:
            for i in range(1000):
                yield i
        finally:
            closed_source = True

    async def fails(i: int) -> None:
        await asyncio.sleep(0)
        if i == 5:
            raise RuntimeError("stop")

    async with TaskExecutor() as executor:
        with pytest.raises(RuntimeError, match="stop"):
            await executor.map(fails, source(), limit=4)
    assert closed_source
    assert not leftovers()


async def test_a_failing_source_fails_the_map() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise OSError("disk")

    async def work(i: int) -> int:
        return i

    async with TaskExecutor() as executor:
        with pytest.raises(OSError, match="disk"):
            await executor.map(work, source(), limit=2)


async def test_map_bad_input() -> None:
    async def work(i: int) -> int:
        return i

    async with TaskExecutor() as executor:
        with pytest.raises(ConfigurationTypeError, match="func"):
            await executor.map(42, range(3))  # type: ignore[call-overload]
        with pytest.raises(ConfigurationTypeError, match="at least one"):
            await executor.map(work)
        with pytest.raises(ConfigurationTypeError, match=r"iterables\[0\]"):
            await executor.map(work, 42)  # type: ignore[call-overload]
        with pytest.raises(ConfigurationError, match="limit"):
            await executor.map(work, range(3), limit=-1)
    with pytest.raises(ExecutorClosedError):
        await executor.map(work, range(3))


# -- streams ---------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_as_completed_yields_in_completion_order(probe: Any) -> None:
    async with TaskExecutor() as executor:
        stream = executor.as_completed(
            probe.job("c", 3), probe.job("a", 1), probe.job("b", 2), probe.job("d", 0.5), limit=3
        )
        assert [x async for x in stream] == ["a", "d", "b", "c"]
        assert probe.peak == 3


async def test_leaving_a_stream_early_cancels_the_rest(probe: Any, leftovers: Leftovers) -> None:
    async with TaskExecutor() as executor:
        never = probe.job("never", 0)
        got = []
        async with executor.as_completed(
            probe.job("fast", 0), probe.job("slow", 10), never, limit=2
        ) as stream:
            async for value in stream:
                got.append(value)
                break
        assert got == ["fast"]
        assert "slow" in probe.cancelled or "never" in probe.cancelled
        assert probe.now == 0
        assert not leftovers()
        unused = probe.job("unused")
        await executor.as_completed(unused).aclose()
        assert closed(unused)


async def test_stream_errors(probe: Any) -> None:
    async with TaskExecutor() as executor:
        with pytest.raises(ValueError, match="bad"):
            async for _ in executor.as_completed(probe.fail(ValueError("bad")), probe.job(1, 10)):
                pass
        assert probe.cancelled == [1]
        values = [
            v
            async for v in executor.as_completed(
                probe.fail(KeyError("k")), probe.job(2), return_exceptions=True
            )
        ]
        assert len(values) == 2
        assert 2 in values


async def test_map_unordered_keeps_memory_bounded_by_the_limit() -> None:
    pulled = consumed = lead = 0

    def items() -> Iterator[int]:
        nonlocal pulled, lead
        for i in range(2000):
            pulled += 1
            lead = max(lead, pulled - consumed)
            yield i

    async def work(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async with TaskExecutor() as executor:
        total = 0
        async for value in executor.map_unordered(work, items(), limit=10):
            consumed += 1
            total += value
            if consumed % 100 == 0:
                await asyncio.sleep(0.001)  # a slow consumer
    assert total == sum(range(2000))
    assert lead <= 2 * 10 + 1  # in flight plus the buffer, not the input


async def test_stream_after_close(probe: Any) -> None:
    executor = TaskExecutor()
    coro = probe.job(1)
    stream = executor.as_completed(coro)
    await executor.close()
    with pytest.raises(ExecutorClosedError):
        await anext(stream)
    assert closed(coro)


async def test_a_cancelled_consumer_stops_the_stream(probe: Any, leftovers: Leftovers) -> None:
    async with TaskExecutor() as executor:
        stream = executor.as_completed(probe.job(1, 10), probe.job(2, 10))

        async def consume() -> list[int]:
            return [x async for x in stream]

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(probe.cancelled) == [1, 2]
        assert not leftovers()


@pytest.mark.looptime
async def test_gather_and_map_follow_the_rate() -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def record(i: int) -> int:
        starts.append(loop.time())
        return i

    async with TaskExecutor(rate=10) as executor:
        assert await executor.gather(*(record(i) for i in range(3)), limit=50) == [0, 1, 2]
        assert await executor.map(record, range(3)) == [0, 1, 2]
        # No start time is booked for items that do not exist: the next run is not delayed.
        assert await executor.run(record, 9) == 9
    assert [round(s, 6) for s in starts] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


@pytest.mark.looptime
async def test_a_rate_limited_gather_cancelled_while_pacing(
    probe: Any, leftovers: Leftovers
) -> None:
    async with TaskExecutor(rate=1) as executor:
        coros = [probe.job(i) for i in range(5)]
        call = asyncio.ensure_future(executor.gather(*coros, limit=5))
        await asyncio.sleep(1.5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert probe.started == [0, 1]
        assert all(closed(c) for c in coros)
        assert executor.stats().pending == 0
        assert not leftovers()
