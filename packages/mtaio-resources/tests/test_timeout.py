import asyncio
import contextlib
import inspect

import pytest

import mtaio.exceptions
from mtaio.exceptions import ConfigurationError
from mtaio.resources import TimeoutManager, TimeoutScope, current_deadline


@pytest.mark.looptime
async def test_entering_the_manager_bounds_the_block() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def body() -> None:
        async with TimeoutManager(5.0) as tm:
            assert tm.remaining == pytest.approx(5.0)
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError) as info:
        await body()
    assert isinstance(info.value, mtaio.exceptions.TimeoutError)
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    assert info.value.timeout == 5.0
    assert loop.time() - start == pytest.approx(5.0)


@pytest.mark.looptime
async def test_run_bounds_one_operation_inside_or_outside() -> None:
    tm = TimeoutManager(2.0)
    assert await tm.run(asyncio.sleep(1, result="ok")) == "ok"
    with pytest.raises(mtaio.exceptions.TimeoutError, match=r"after 0\.5 s"):
        await tm.run(asyncio.sleep(1), timeout=0.5)
    async with tm:
        assert await tm.run(asyncio.sleep(0.1, result=1), timeout=1) == 1
    assert tm.default_timeout == 2.0
    assert "2.0" in repr(tm)


async def test_run_with_a_bad_timeout_closes_the_coroutine() -> None:
    tm = TimeoutManager()
    coro = asyncio.sleep(1)
    with pytest.raises(ConfigurationError, match="timeout"):
        await tm.run(coro, timeout=-1)
    # closed: no "coroutine was never awaited" warning
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


@pytest.mark.looptime
async def test_nested_deadlines_inner_shortens_never_extends() -> None:
    loop = asyncio.get_running_loop()
    tm = TimeoutManager()
    assert current_deadline() is None
    assert tm.remaining is None
    start = loop.time()
    outer, longer = tm.timeout(3), tm.timeout(10)

    async def body() -> None:
        async with outer:
            assert outer.deadline == pytest.approx(start + 3)
            async with longer:
                # asks for 10 s but the enclosing 3 s rule
                assert longer.deadline == pytest.approx(start + 3)
                assert longer.remaining() == pytest.approx(3)
                async with tm.timeout(1) as shorter:
                    assert shorter.deadline == pytest.approx(start + 1)
                    assert current_deadline() == pytest.approx(start + 1)
                    await asyncio.sleep(0.5)
                assert current_deadline() == pytest.approx(start + 3)
                assert not shorter.expired
                await asyncio.sleep(100)

    with pytest.raises(TimeoutError):
        await body()
    assert outer.expired
    assert not longer.expired  # the enclosing scope's deadline expired, not this one's
    assert loop.time() - start == pytest.approx(3)
    assert current_deadline() is None


@pytest.mark.looptime
async def test_inner_expiry_is_caught_inside_the_outer_scope() -> None:
    tm = TimeoutManager()
    async with tm.timeout(5) as outer:
        with pytest.raises(TimeoutError):
            async with tm.timeout(1):
                await asyncio.sleep(2)
        await asyncio.sleep(1)
    assert not outer.expired


@pytest.mark.looptime
async def test_move_on_cuts_the_block_short() -> None:
    loop = asyncio.get_running_loop()
    tm = TimeoutManager(1.0)
    start = loop.time()
    reached = False
    async with tm.move_on() as scope:
        await asyncio.sleep(5)
        reached = True
    assert not reached
    assert scope.expired
    assert loop.time() - start == pytest.approx(1.0)
    async with tm.move_on(2) as quick:
        await asyncio.sleep(1)
    assert not quick.expired
    assert "expired=False" in repr(quick)


@pytest.mark.looptime
async def test_no_cancel_lands_after_the_block() -> None:
    tm = TimeoutManager()
    loop = asyncio.get_running_loop()
    async with tm.timeout(1):
        await asyncio.sleep(0.999)
    # exiting cancelled the timer: sleeping past the deadline is undisturbed
    start = loop.time()
    await asyncio.sleep(5)
    assert loop.time() - start == pytest.approx(5)


@pytest.mark.looptime
async def test_the_blocks_own_timeout_error_passes_through() -> None:
    tm = TimeoutManager()
    with pytest.raises(TimeoutError, match="mine") as info:
        async with tm.timeout(1) as scope:
            raise TimeoutError("mine")
    assert not isinstance(info.value, mtaio.exceptions.TimeoutError)
    assert not scope.expired


@pytest.mark.looptime
async def test_outer_cancellation_is_not_turned_into_timeout() -> None:
    tm = TimeoutManager()

    async def body() -> None:
        async with tm.timeout(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(body())
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_unbounded_scope_reports_no_deadline() -> None:
    async with TimeoutScope(None) as scope:
        assert scope.deadline is None
        assert scope.remaining() is None
    with pytest.raises(ConfigurationError, match="entered only once"):
        async with scope:
            pass


def test_bad_timeouts() -> None:
    with pytest.raises(ConfigurationError, match="default_timeout"):
        TimeoutManager(-1)
    with pytest.raises(ConfigurationError, match="seconds"):
        TimeoutScope(-0.5)
    with pytest.raises(ConfigurationError, match=r"^seconds must"):
        TimeoutManager().timeout(-2)
    with pytest.raises(ConfigurationError, match=r"^seconds must"):
        TimeoutManager().move_on(seconds=-2)


@pytest.mark.looptime
async def test_cascade_raises_after_the_last_timeout() -> None:
    tm = TimeoutManager()
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(100)

    with pytest.raises(mtaio.exceptions.TimeoutError) as info:
        await tm.cascade(slow, [1, 2, 3])
    assert calls == 3
    assert info.value.timeout == 3
    with pytest.raises(ConfigurationError, match="at least one"):
        await tm.cascade(slow, [])
    with pytest.raises(ConfigurationError, match=r"timeouts\[1\]"):
        await tm.cascade(slow, [1, -1])
    assert calls == 3


@pytest.mark.looptime
async def test_cascade_does_not_retry_other_errors() -> None:
    tm = TimeoutManager()

    async def broken() -> None:
        raise TimeoutError("not ours")

    with pytest.raises(TimeoutError, match="not ours"):
        await tm.cascade(broken, [1, 2])


@pytest.mark.looptime
async def test_one_manager_entered_by_several_tasks() -> None:
    tm = TimeoutManager(2.0)
    loop = asyncio.get_running_loop()

    async def body(seconds: float) -> float:
        async with tm:
            await asyncio.sleep(seconds)
        return loop.time()

    start = loop.time()
    quick, slow = await asyncio.gather(body(0.5), body(3), return_exceptions=True)
    assert quick == pytest.approx(start + 0.5)
    assert isinstance(slow, mtaio.exceptions.TimeoutError)
    assert tm._scopes == {}


@pytest.mark.looptime
async def test_a_block_that_swallows_the_cancel_still_reports_expiry() -> None:
    tm = TimeoutManager()
    async with tm.timeout(1) as scope:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)
    assert scope.expired
