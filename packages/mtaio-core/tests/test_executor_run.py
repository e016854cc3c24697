import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mtaio.core import ExecutorClosedError, ExecutorStats, TaskExecutor
from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    MTAIOError,
    ResourceError,
)
from mtaio.exceptions import TimeoutError as MTAIOTimeoutError

# Virtual time: the sleeps that let work progress cannot race a loaded machine.
pytestmark = pytest.mark.looptime

Leftovers = Callable[[], set[asyncio.Task[Any]]]


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_created_and_closed_without_a_running_loop() -> None:
    executor = TaskExecutor()
    assert executor.stats() == ExecutorStats(
        running=0, pending=0, completed=0, failed=0, cancelled=0
    )
    asyncio.run(executor.close())
    assert executor.closed
    assert "closed" in repr(executor)


async def test_run_awaitable_and_function() -> None:
    async with TaskExecutor() as executor:
        assert await executor.run(double(2)) == 4
        assert await executor.run(double, 5) == 10
        assert await executor.run(double, x=6) == 12
        assert executor.stats().completed == 3


async def test_run_lets_the_task_error_through_unchanged() -> None:
    error = ResourceError("broken")

    async def fails() -> None:
        raise error

    async with TaskExecutor() as executor:
        with pytest.raises(MTAIOError) as info:
            await executor.run(fails())
        assert info.value is error
        with pytest.raises(KeyError):
            await executor.run(lambda: (_ for _ in ()).throw(KeyError("x")))
        assert executor.stats().failed == 2


@pytest.mark.looptime
async def test_run_timeout_raises_mtaio_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    async with TaskExecutor() as executor:
        start = loop.time()
        with pytest.raises(MTAIOTimeoutError) as info:
            await executor.run(asyncio.sleep(10), timeout=2.5)
        assert isinstance(info.value, TimeoutError)
        assert info.value.timeout == 2.5
        assert loop.time() - start == pytest.approx(2.5)
        assert await executor.run(double(1), timeout=1) == 2


async def test_a_timeout_error_raised_by_the_task_is_not_replaced() -> None:
    error = TimeoutError("mine")

    async def fails() -> None:
        raise error

    async with TaskExecutor() as executor:
        with pytest.raises(TimeoutError) as info:
            await executor.run(fails(), timeout=5)
        assert info.value is error


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -3}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"rate": 0}, "rate"),
        ({"rate": -1.0}, "rate"),
        ({"max_workers": 0}, "max_workers"),
        ({"thread_pool": "pool"}, "thread_pool"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        TaskExecutor(**kwargs)


def test_max_workers_cannot_size_a_given_pool() -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ConfigurationTypeError, match="max_workers"):
        TaskExecutor(pool, max_workers=2)


async def test_run_refuses_what_it_cannot_await() -> None:
    async with TaskExecutor() as executor:
        with pytest.raises(ConfigurationTypeError, match="awaitable"):
            await executor.run(42)  # type: ignore[call-overload]
        coro = double(1)
        with pytest.raises(ConfigurationTypeError, match="no arguments"):
            await executor.run(coro, 1)  # type: ignore[call-overload]
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # cannot warn "never awaited"
        with pytest.raises(ConfigurationTypeError, match="not an awaitable"):
            await executor.run(lambda: 3)  # type: ignore[arg-type, return-value]
        with pytest.raises(ConfigurationError, match="timeout"):
            await executor.run(double(1), timeout=-1)


async def test_run_after_close_raises_and_closes_the_coroutine() -> None:
    executor = TaskExecutor()
    await executor.close()
    await executor.close()  # idempotent
    coro = double(1)
    with pytest.raises(ExecutorClosedError):
        await executor.run(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_concurrent_runs_never_exceed_the_limit(probe: Any) -> None:
    async with TaskExecutor(limit=3) as executor:
        results = await asyncio.gather(*(executor.run(probe.job(i, 0.001)) for i in range(20)))
        assert results == list(range(20))
        assert probe.peak == 3
        assert executor.stats().completed == 20


async def test_waiting_runs_start_in_arrival_order(probe: Any) -> None:
    async with TaskExecutor(limit=1) as executor:
        await asyncio.gather(*(executor.run(probe.job, i) for i in range(6)))
        assert probe.started == list(range(6))


@pytest.mark.looptime
async def test_rate_spaces_the_starts() -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def record() -> None:
        starts.append(loop.time())

    async with TaskExecutor(rate=4) as executor:
        await asyncio.gather(*(executor.run(record) for _ in range(5)))
    assert [round(s, 6) for s in starts] == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.looptime
async def test_a_run_cancelled_while_pacing_gives_back_its_slot_and_start() -> None:
    loop = asyncio.get_running_loop()
    async with TaskExecutor(limit=1, rate=1) as executor:
        await executor.run(double(1))
        waiting = asyncio.ensure_future(executor.run(double(2)))
        await asyncio.sleep(0.5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        start = loop.time()
        assert await executor.run(double(3)) == 6
        assert loop.time() - start == pytest.approx(0.5)  # the start at t=1 was given back


async def test_a_cancelled_caller_releases_its_slot(probe: Any, leftovers: Leftovers) -> None:
    async with TaskExecutor(limit=1) as executor:
        running = asyncio.ensure_future(executor.run(probe.job(1, 10)))
        queued = asyncio.ensure_future(executor.run(probe.job(2, 10)))
        await asyncio.sleep(0.01)
        assert executor.stats().running == 1
        assert executor.stats().pending == 1
        queued.cancel()
        running.cancel()
        for task in (running, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert probe.cancelled == [1]
        assert executor.stats().cancelled == 1
        assert await executor.run(double(4)) == 8  # the slot is free again
        assert not leftovers()


async def test_set_limit_while_work_waits(probe: Any) -> None:
    async with TaskExecutor(limit=1) as executor:
        started = asyncio.gather(*(executor.run(probe.job(i, 0.01)) for i in range(6)))
        await asyncio.sleep(0)
        executor.set_limit(3)
        assert executor.limit == 3
        await started
        assert probe.peak == 3
        executor.limit = None
        assert executor.limit is None
        with pytest.raises(ConfigurationError, match="limit"):
            executor.set_limit(0)


async def test_lowering_the_limit_lets_running_work_finish(probe: Any) -> None:
    async with TaskExecutor(limit=4) as executor:
        first = asyncio.gather(*(executor.run(probe.job(i, 0.02)) for i in range(4)))
        await asyncio.sleep(0.005)
        executor.set_limit(1)
        later = asyncio.gather(*(executor.run(probe.job(i, 0.001)) for i in range(4, 8)))
        await first
        probe.peak = probe.now
        await later
        assert probe.peak == 1


async def test_close_fails_the_work_waiting_for_a_slot(probe: Any) -> None:
    executor = TaskExecutor(limit=1)
    running = asyncio.ensure_future(executor.run(probe.job(1, 0.05)))
    waiting = asyncio.ensure_future(executor.run(probe.job(2)))
    await asyncio.sleep(0)
    await executor.close()
    with pytest.raises(ExecutorClosedError):
        await waiting
    assert await running == 1  # run() work lives in its caller's task and finishes


var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def test_run_in_thread_carries_context_and_is_joined_on_close() -> None:
    executor = TaskExecutor(max_workers=2)
    var.set("caller")
    seen: list[tuple[str, str]] = []

    def blocking(suffix: str, *, sep: str) -> str:
        seen.append((var.get(), threading.current_thread().name))
        return var.get() + sep + suffix

    assert await executor.run_in_thread(blocking, "x", sep="-") == "caller-x"
    assert seen[0][1].startswith("mtaio-core")
    with pytest.raises(ZeroDivisionError):
        await executor.run_in_thread(lambda: 1 / 0)
    before = set(threading.enumerate())
    await executor.close()
    assert not any(t.name.startswith("mtaio-core") for t in threading.enumerate())
    assert set(threading.enumerate()) <= before
    with pytest.raises(ConfigurationTypeError, match="func"):
        await executor.run_in_thread(42)  # type: ignore[arg-type]


async def test_close_waits_for_a_thread_that_is_still_running() -> None:
    executor = TaskExecutor()
    release = threading.Event()
    call = asyncio.ensure_future(executor.run_in_thread(release.wait, 5))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert executor.stats().cancelled == 1
    closing = asyncio.ensure_future(executor.close())
    await asyncio.sleep(0.01)
    assert not closing.done()  # the thread is still busy
    release.set()
    await closing
    assert not any(t.name.startswith("mtaio-core") for t in threading.enumerate())


async def test_a_given_thread_pool_is_not_shut_down() -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="mine") as pool:
        executor = TaskExecutor(pool)
        assert await executor.run_in_thread(sum, [1, 2]) == 3
        await executor.close()
        assert pool.submit(sum, [3]).result() == 3
