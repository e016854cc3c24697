import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from mtaio.core import ExecutorClosedError, TaskExecutor
from mtaio.exceptions import ConfigurationTypeError

# Virtual time: the sleeps that let work progress cannot race a loaded machine.
pytestmark = pytest.mark.looptime

Leftovers = Callable[[], set[asyncio.Task[Any]]]


async def test_submit_returns_a_handle_to_await(probe: Any) -> None:
    async with TaskExecutor(limit=2) as executor:
        handles = [executor.submit(probe.job(i, 0.001)) for i in range(10)]
        assert [await h for h in handles] == list(range(10))
        assert probe.peak == 2
        assert handles[0].done() and not handles[0].cancelled() and not handles[0].running()
        assert handles[0].result() == 0 and handles[0].exception() is None
        assert "done" in repr(handles[0])
        assert executor.stats().completed == 10


async def test_pending_work_starts_by_priority_then_fifo(probe: Any) -> None:
    async with TaskExecutor(limit=1) as executor:
        gate = asyncio.Event()

        async def blocker() -> None:
            await gate.wait()

        first = executor.submit(blocker())
        await asyncio.sleep(0)  # the blocker takes the only slot
        assert first.running()
        order = [("low", 5), ("high-a", -1), ("mid-a", 0), ("high-b", -1), ("mid-b", 0), ("x", 2)]
        handles = [executor.submit(probe.job(name), priority=p) for name, p in order]
        assert handles[1].priority == -1
        await asyncio.sleep(0.01)
        assert probe.started == []  # the cap is reached: everything waits
        assert executor.stats().pending == 6
        assert "pending" in repr(handles[0])
        gate.set()
        await first
        await asyncio.gather(*handles)
        assert probe.started == ["high-a", "high-b", "mid-a", "mid-b", "x", "low"]


async def test_submit_works_without_a_limit(probe: Any) -> None:
    async with TaskExecutor() as executor:
        handles = [executor.submit(probe.job(i, 0.01), priority=i % 3) for i in range(20)]
        assert await asyncio.gather(*handles) == list(range(20))
        assert probe.peak == 20


async def test_errors_reach_the_awaiter(probe: Any) -> None:
    async with TaskExecutor(limit=1) as executor:
        error = ValueError("bad")
        handle = executor.submit(probe.fail(error))
        with pytest.raises(ValueError, match="bad") as info:
            await handle
        assert info.value is error
        assert handle.exception() is error
        assert executor.stats().failed == 1


async def test_cancel_pending_work_closes_it_unstarted(probe: Any) -> None:
    async with TaskExecutor(limit=1) as executor:
        running = executor.submit(probe.job("running", 0.01))
        coro = probe.job("pending")
        pending = executor.submit(coro)
        assert pending.cancel()
        assert not pending.cancel() or pending.cancelled()
        assert await running == "running"
        await asyncio.sleep(0)
        assert pending.cancelled()
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        assert probe.started == ["running"]
        assert executor.stats().cancelled == 1


async def test_cancel_running_work_keeps_the_worker(probe: Any, leftovers: Leftovers) -> None:
    async with TaskExecutor(limit=1) as executor:
        victim = executor.submit(probe.job("victim", 10))
        after = executor.submit(probe.job("after"))
        await asyncio.sleep(0.01)
        assert victim.running()
        assert "running" in repr(victim)
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim
        assert await after == "after"  # the same worker went on with the next work
        assert probe.cancelled == ["victim"]
        assert executor.stats().cancelled == 1
    assert not leftovers()


async def test_work_that_swallows_its_cancellation() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "ignored"
        return "slept"

    async with TaskExecutor(limit=1) as executor:
        handle = executor.submit(stubborn())
        after = executor.submit(asyncio.sleep(0, "after"))
        await asyncio.sleep(0.01)
        handle.cancel()
        assert await after == "after"
        assert handle.cancelled()


async def test_work_that_cancels_itself() -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError

    async with TaskExecutor(limit=1) as executor:
        handle = executor.submit(gives_up())
        with pytest.raises(asyncio.CancelledError):
            await handle
        assert await executor.submit(asyncio.sleep(0, 1)) == 1


async def test_a_cancelled_awaiter_cancels_the_work(probe: Any) -> None:
    async with TaskExecutor() as executor:
        handle = executor.submit(probe.job("work", 10))

        async def waiter() -> object:
            return await handle

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        assert probe.cancelled == ["work"]
        assert handle.cancelled()


async def test_done_callbacks_run(probe: Any) -> None:
    async with TaskExecutor() as executor:
        seen: list[object] = []
        handle = executor.submit(probe.job(7))
        handle.add_done_callback(lambda fut: seen.append(fut.result()))
        await handle
        await asyncio.sleep(0)
        assert seen == [7]


async def test_raising_the_limit_starts_more_submitted_work(probe: Any) -> None:
    async with TaskExecutor(limit=1) as executor:
        handles = [executor.submit(probe.job(i, 0.01)) for i in range(8)]
        await asyncio.sleep(0)
        executor.set_limit(4)
        await asyncio.gather(*handles)
        assert probe.peak == 4
        executor.set_limit(2)
        probe.peak = 0
        await asyncio.gather(*(executor.submit(probe.job(i, 0.001)) for i in range(8)))
        assert probe.peak == 2


async def test_close_cancels_pending_and_running_work(probe: Any, leftovers: Leftovers) -> None:
    executor = TaskExecutor(limit=1)
    running = executor.submit(probe.job("running", 10))
    coro = probe.job("pending")
    pending = executor.submit(coro)
    await asyncio.sleep(0.01)
    await executor.close()
    assert running.cancelled() and pending.cancelled()
    assert probe.cancelled == ["running"]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    assert not leftovers()
    later = probe.job("later")
    with pytest.raises(ExecutorClosedError):
        executor.submit(later)
    assert inspect.getcoroutinestate(later) == inspect.CORO_CLOSED


async def test_submit_refuses_what_it_cannot_await() -> None:
    async with TaskExecutor() as executor:
        with pytest.raises(ConfigurationTypeError, match="awaitable"):
            executor.submit(lambda: 1)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_submitted_work_follows_the_rate() -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def record() -> None:
        starts.append(loop.time())

    async with TaskExecutor(rate=2) as executor:
        await asyncio.gather(*(executor.submit(record()) for _ in range(4)))
    assert [round(s, 6) for s in starts] == [0.0, 0.5, 1.0, 1.5]


async def test_handle_state_queries() -> None:
    async with TaskExecutor(limit=1) as executor:
        gate = asyncio.Event()
        blocker = executor.submit(gate.wait())
        pending = executor.submit(asyncio.sleep(0, "x"))
        with pytest.raises(asyncio.InvalidStateError):
            pending.result()
        assert pending.cancel("no longer needed")
        assert not pending.cancel()
        with pytest.raises(asyncio.CancelledError, match="no longer needed"):
            pending.result()
        with pytest.raises(asyncio.CancelledError):
            pending.exception()
        with pytest.raises(asyncio.CancelledError):
            await pending
        gate.set()
        assert await blocker is True
        seen: list[object] = []
        blocker.add_done_callback(lambda h: seen.append(h.result()))
        await asyncio.sleep(0)
        assert seen == [True]
        assert "cancelled" in repr(pending)


async def test_work_that_cancels_its_own_handle_runs_on() -> None:
    async with TaskExecutor(limit=1) as executor:
        handles: list[Any] = []

        async def cancels_itself() -> str:
            handles[0].cancel()
            await asyncio.sleep(0)
            return "finished"

        handles.append(executor.submit(cancels_itself()))
        after = executor.submit(asyncio.sleep(0, "after"))
        assert await after == "after"
        assert handles[0].cancelled()
        assert executor.stats().cancelled == 1


async def test_several_awaiters_of_one_handle(probe: Any) -> None:
    async with TaskExecutor() as executor:
        handle = executor.submit(probe.job("shared", 0.01))
        assert list(await asyncio.gather(handle, handle)) == ["shared", "shared"]
        failing = executor.submit(probe.fail(KeyError("k"), 0.01))
        results = await asyncio.gather(failing, failing, return_exceptions=True)
        assert all(isinstance(r, KeyError) for r in results)


@pytest.mark.looptime
async def test_close_while_submitted_work_waits_for_its_start_time(
    probe: Any, leftovers: Leftovers
) -> None:
    executor = TaskExecutor(rate=1)
    coros = [probe.job(i) for i in range(3)]
    handles = [executor.submit(c) for c in coros]
    await asyncio.sleep(0.5)
    assert probe.started == [0]
    await executor.close()
    assert handles[0].result() == 0
    assert handles[1].cancelled() and handles[2].cancelled()
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coros)
    assert not leftovers()


async def test_submitted_work_shares_the_cap_with_run(probe: Any) -> None:
    async with TaskExecutor(limit=1) as executor:
        gate = asyncio.Event()
        holder = asyncio.ensure_future(executor.run(gate.wait()))
        await asyncio.sleep(0)
        handles = [executor.submit(probe.job(p), priority=p) for p in (3, 0, -2, 1)]
        await asyncio.sleep(0.01)
        assert probe.started == []  # the slot is held by run()
        gate.set()
        await holder
        await asyncio.gather(*handles)
        assert probe.started == [-2, 0, 1, 3]
        assert probe.peak == 1


async def test_many_cancelled_slot_waiters_do_not_pile_up() -> None:
    async with TaskExecutor(limit=1) as executor:
        gate = asyncio.Event()
        holder = asyncio.ensure_future(executor.run(gate.wait()))
        await asyncio.sleep(0)
        for _ in range(150):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0):
                    await executor.run(asyncio.sleep(0))
        assert len(executor._slot_waiters) < 150
        gate.set()
        await holder
        assert await executor.run(asyncio.sleep(0, "ok")) == "ok"
        assert executor.stats().pending == 0
