import asyncio

import pytest

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    ResourceLockError,
    ResourceTimeoutError,
)
from mtaio.resources import ConcurrencyLimiter, ConcurrencyStats


async def test_limits_holders_and_counts() -> None:
    limiter = ConcurrencyLimiter(2)
    running = 0
    peak = 0

    async def work() -> None:
        nonlocal running, peak
        async with limiter:
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)
            running -= 1

    await asyncio.gather(*(work() for _ in range(10)))
    assert peak == 2
    assert limiter.stats() == ConcurrencyStats(limit=2, borrowed=0, waiting=0, acquired=10)


async def test_fifo_hand_off_without_barging() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    order: list[int] = []

    async def take(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        limiter.release()

    tasks = [asyncio.create_task(take(i)) for i in range(5)]
    await asyncio.sleep(0)
    assert limiter.waiting == 5
    assert limiter.locked()
    limiter.release()
    assert not limiter.try_acquire()  # the permit went to the first waiter, not to us
    await asyncio.gather(*tasks)
    assert order == list(range(5))
    assert limiter.borrowed == 0


async def test_release_without_acquire_is_an_error() -> None:
    limiter = ConcurrencyLimiter(1)
    with pytest.raises(ResourceLockError, match="more often than acquire"):
        limiter.release()


def test_bad_limit() -> None:
    with pytest.raises(ConfigurationError, match="limit"):
        ConcurrencyLimiter(0)
    with pytest.raises(ConfigurationTypeError, match="limit"):
        ConcurrencyLimiter(1.5)  # type: ignore[call-overload]
    limiter = ConcurrencyLimiter(1)
    with pytest.raises(ConfigurationError, match="limit"):
        limiter.limit = -1


async def test_limit_changes_while_in_use() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    limiter.limit = 3  # two more permits: two waiters get in at once
    await asyncio.sleep(0)
    assert limiter.borrowed == 3
    assert limiter.waiting == 1
    limiter.limit = 1  # lowering lets holders finish; nobody new gets in
    limiter.release()
    limiter.release()
    await asyncio.sleep(0)
    assert limiter.borrowed == 1
    assert limiter.waiting == 1
    limiter.release()
    await asyncio.gather(*waiters)
    assert limiter.borrowed == 1
    assert "limit=1" in repr(limiter)


@pytest.mark.looptime
async def test_timeout_and_cancellation_leak_no_permit() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    with pytest.raises(ResourceTimeoutError, match=r"within 1\.0 s"):
        await limiter.acquire(timeout=1.0)
    cancelled = asyncio.create_task(limiter.acquire())
    later = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    limiter.release()
    await later
    assert limiter.borrowed == 1
    limiter.release()
    assert limiter.borrowed == 0
    with pytest.raises(ConfigurationError, match="timeout"):
        await limiter.acquire(timeout=-1)


async def test_cancelled_after_hand_off_passes_the_permit_on() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # hands the permit to `first` ...
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert limiter.borrowed == 1


async def test_decorator_bare_and_with_timeout() -> None:
    limiter = ConcurrencyLimiter(1)

    @limiter
    async def bare() -> int:
        assert limiter.borrowed == 1
        return 1

    @limiter.limit_calls(timeout=1)
    async def bounded() -> int:
        raise ValueError("inside")

    assert await bare() == 1
    with pytest.raises(ValueError, match="inside"):
        await bounded()
    assert limiter.borrowed == 0
    with pytest.raises(ConfigurationTypeError):
        limiter.limit_calls(print)  # type: ignore[arg-type]
