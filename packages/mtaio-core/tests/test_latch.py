import asyncio

import pytest

from mtaio.core import Latch, LatchStats
from mtaio.exceptions import ConfigurationError
from mtaio.exceptions import TimeoutError as MTAIOTimeoutError


def test_created_without_a_loop() -> None:
    latch = Latch(3)
    assert latch.count == latch.get_count() == 3
    assert not latch.is_open()
    assert repr(latch) == "<Latch count=3/3>"


async def test_waiters_are_released_at_zero() -> None:
    latch = Latch(3)
    waiters = [asyncio.ensure_future(latch.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert latch.stats() == LatchStats(count=3, initial=3, waiters=2)
    assert await latch.count_down() == 2
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    assert await latch.count_down(2) == 0
    assert await asyncio.gather(*waiters) == [True, True]
    assert latch.is_open()
    assert await latch.wait() is True  # stays open
    assert await latch.count_down() == 0  # never below zero


async def test_counting_down_past_zero_clamps() -> None:
    latch = Latch(2)
    assert latch.count_down_nowait(5) == 0
    assert latch.count == 0
    assert await Latch(0).wait(timeout=0)


@pytest.mark.looptime
async def test_wait_timeout_raises_mtaios_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    latch = Latch(1)
    start = loop.time()
    with pytest.raises(MTAIOTimeoutError, match="within 2 s") as info:
        await latch.wait(timeout=2)
    assert info.value.timeout == 2  # also the builtin TimeoutError, as every mtaio one
    assert loop.time() - start == pytest.approx(2)
    assert latch.stats().waiters == 0  # the timed-out waiter is gone
    loop.call_later(1, latch.count_down_nowait)
    assert await latch.wait(timeout=5) is True
    assert loop.time() - start == pytest.approx(3)


async def test_a_cancelled_waiter_is_removed() -> None:
    latch = Latch(1)
    waiter = asyncio.ensure_future(latch.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert latch.stats().waiters == 0
    assert len(latch._waiters) == 0


async def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="count"):
        Latch(-1)
    with pytest.raises(ConfigurationError, match="count"):
        Latch(1.5)  # type: ignore[arg-type]
    latch = Latch(1)
    with pytest.raises(ConfigurationError, match="n"):
        await latch.count_down(0)
    with pytest.raises(ConfigurationError, match="timeout"):
        await latch.wait(timeout=-1)
