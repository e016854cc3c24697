import asyncio

import pytest

from mtaio.exceptions import ConfigurationError, ResourceTimeoutError
from mtaio.resources import ConcurrencyStats, ResourceLimiter, ResourceLimiterStats


class NoInit(ResourceLimiter):
    def __init__(self) -> None:
        self.own = True


@pytest.mark.looptime
async def test_an_instance_without_init_uses_one_token_per_second() -> None:
    loop = asyncio.get_running_loop()
    limiter = NoInit()
    start = loop.time()
    for _ in range(3):
        await limiter.acquire()
    assert loop.time() - start == pytest.approx(2.0)
    await limiter.acquire(tokens=0.5)
    await limiter.acquire(tokens=0.5)
    assert loop.time() - start == pytest.approx(3.0)
    assert limiter.rate_limiter is not None
    assert limiter.rate_limiter.burst == 1.0
    assert limiter.concurrency_limiter is None
    limiter.release()  # nothing to release without a concurrency limit


def test_stats_of_an_instance_without_init() -> None:
    stats = NoInit().stats()
    assert stats.rate is not None
    assert stats.rate.rate == 1.0
    assert stats.concurrency is None


async def test_stats_of_a_concurrency_only_limiter() -> None:
    limiter = ResourceLimiter(concurrency=3)
    async with limiter:
        stats = limiter.stats()
    assert stats == ResourceLimiterStats(
        rate=None, concurrency=ConcurrencyStats(limit=3, borrowed=1, waiting=0, acquired=1)
    )
    assert limiter.stats().concurrency == ConcurrencyStats(
        limit=3, borrowed=0, waiting=0, acquired=1
    )


@pytest.mark.looptime
async def test_rate_and_concurrency_together() -> None:
    loop = asyncio.get_running_loop()
    limiter = ResourceLimiter(rate=10, concurrency=2, burst=1)
    running = 0
    peak = 0

    @limiter.limit
    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(1)
        running -= 1

    start = loop.time()
    await asyncio.gather(*(work() for _ in range(4)))
    assert peak == 2
    assert loop.time() - start == pytest.approx(2.1)
    stats = limiter.stats()
    assert stats.concurrency is not None
    assert stats.concurrency.acquired == 4
    assert stats.rate is not None
    assert stats.rate.acquired == 4


@pytest.mark.looptime
async def test_context_manager_and_decorator_with_tokens() -> None:
    limiter = ResourceLimiter(concurrency=1)
    async with limiter as entered:
        assert entered is limiter
        assert limiter.concurrency_limiter is not None
        assert limiter.concurrency_limiter.borrowed == 1
    assert limiter.rate_limiter is None

    rated = ResourceLimiter(rate=2, burst=2)

    @rated.limit(tokens=2)
    async def heavy() -> str:
        return "ok"

    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await heavy() == "ok"
    assert await heavy() == "ok"
    assert loop.time() - start == pytest.approx(1.0)


@pytest.mark.looptime
async def test_timeout_covers_both_waits_and_frees_the_permit() -> None:
    limiter = ResourceLimiter(rate=1, concurrency=1, burst=1, timeout=0.4)
    await limiter.acquire()  # holds the permit and the only token
    with pytest.raises(ResourceTimeoutError):
        await limiter.acquire()  # no permit within 0.4 s
    limiter.release()
    with pytest.raises(ResourceTimeoutError):
        await limiter.acquire()  # a permit at once, but no token within 0.4 s
    assert limiter.concurrency_limiter is not None
    assert limiter.concurrency_limiter.borrowed == 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.acquire()
    assert loop.time() - start == pytest.approx(0.2)  # the token is back at t = 1 s


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="burst needs a rate"):
        ResourceLimiter(burst=2)
    with pytest.raises(ConfigurationError, match="timeout"):
        ResourceLimiter(rate=1, timeout=-1)
    with pytest.raises(ConfigurationError, match="rate"):
        ResourceLimiter(rate=0)
    with pytest.raises(ConfigurationError, match="concurrency must"):
        ResourceLimiter(concurrency=0)
    default = ResourceLimiter()
    assert default.rate_limiter is not None
    assert default.rate_limiter.rate == 1.0
