import asyncio
import dataclasses
import re

import pytest

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    ResourceTimeoutError,
)
from mtaio.resources import (
    KeyedRateLimiter,
    KeyedRateLimiterStats,
    Limit,
    RateLimiter,
    RateLimiterStats,
)
from mtaio.typing import ManualClock


def test_try_acquire_with_manual_clock() -> None:
    clock = ManualClock()
    limiter = RateLimiter(10, burst=5, clock=clock)
    assert limiter.try_acquire(5)
    assert not limiter.try_acquire()
    clock.advance(0.1)  # one token
    assert limiter.try_acquire()
    assert not limiter.try_acquire(0.5)
    clock.advance(10)  # refill caps at the burst
    assert limiter.available() == 5
    assert limiter.stats().acquired == 2


def test_default_burst_is_a_tenth_of_the_rate_at_least_one() -> None:
    assert RateLimiter(200).burst == 20
    assert RateLimiter(2).burst == 1
    assert RateLimiter(60, per=60).rate == 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -1}, "rate"),
        ({"rate": 1, "burst": 0}, "burst"),
        ({"rate": 1, "per": 0}, "per"),
        ({"rate": 1, "limits": [Limit(0)]}, "limits[0].rate"),
        ({"rate": 1, "oversize": "nope"}, "oversize"),
    ],
)
def test_bad_configuration_names_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigurationError, match="^" + re.escape(name)):
        RateLimiter(**kwargs)  # type: ignore[call-overload]


async def test_bad_tokens_are_refused() -> None:
    limiter = RateLimiter(10, burst=2)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ConfigurationError, match="tokens"):
            await limiter.acquire(bad)
    with pytest.raises(ConfigurationError, match="exceeds the bucket capacity"):
        await limiter.acquire(3)
    with pytest.raises(ConfigurationTypeError, match="tokens"):
        await limiter.acquire("1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="tokens"):
        limiter.try_acquire(3)
    with pytest.raises(ConfigurationError, match="timeout"):
        await limiter.acquire(2, timeout=-1)
    assert limiter.stats().waiting == 0


@pytest.mark.looptime
async def test_achieved_rate_and_no_window_above_rate_plus_burst() -> None:
    loop = asyncio.get_running_loop()
    rate, burst = 200.0, 10.0
    limiter = RateLimiter(rate, burst)
    stamps: list[float] = []
    start = loop.time()

    async def worker() -> None:
        while loop.time() - start < 2.0:
            await limiter.acquire()
            stamps.append(loop.time() - start)

    await asyncio.gather(*(worker() for _ in range(50)))
    within = [t for t in stamps if t <= 2.0]
    # the bucket starts full: burst + rate * 2 s, to within a token of rounding
    assert abs(len(within) - (burst + rate * 2.0)) <= 1
    # never more than rate + burst in any window of one second
    j = 0
    worst = 0
    for i, t in enumerate(stamps):
        while stamps[j] < t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    assert worst <= rate + burst


@pytest.mark.looptime
async def test_waiters_are_served_in_fifo_order() -> None:
    limiter = RateLimiter(1, burst=1)
    await limiter.acquire()
    order: list[int] = []

    async def take(i: int, tokens: float) -> None:
        await limiter.acquire(tokens)
        order.append(i)

    tasks = [asyncio.create_task(take(i, 1.0 if i % 2 else 0.5)) for i in range(6)]
    await asyncio.sleep(0)
    assert limiter.stats().waiting == 6
    assert not limiter.try_acquire(0.1)  # waiters keep their turn
    await asyncio.gather(*tasks)
    assert order == list(range(6))


@pytest.mark.looptime
async def test_one_timer_for_many_waiters() -> None:
    limiter = RateLimiter(10, burst=1)
    await limiter.acquire()
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(limiter.acquire()) for _ in range(100)]
    await asyncio.sleep(0)
    timers = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert len(timers) == 1
    start = loop.time()
    await asyncio.gather(*tasks)
    assert loop.time() - start == pytest.approx(10.0)


@pytest.mark.looptime
async def test_a_cancelled_waiter_consumes_nothing() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(1, burst=1)
    await limiter.acquire()
    head = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.5)
    head.cancel()
    with pytest.raises(asyncio.CancelledError):
        await head
    start = loop.time()
    await second  # gets the token the cancelled head would have had, at t = 1 s
    assert loop.time() - start == pytest.approx(0.5)
    assert limiter.stats().waiting == 0
    assert limiter.stats().acquired == 2


async def _served_then_cancelled(limiter: RateLimiter) -> None:
    """Cancel a waiter in the window between being served and running again."""
    head = asyncio.create_task(limiter.acquire(2))  # blocks the queue: not enough tokens
    second = asyncio.create_task(limiter.acquire(1))
    await asyncio.sleep(0)
    head.cancel()
    await asyncio.sleep(0)  # the head's exit serves `second`, which has not run yet
    assert limiter.stats().acquired == 2  # the first acquire and `second`
    second.cancel()
    for task in (head, second):
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.looptime
async def test_cancelled_after_being_served_gives_the_tokens_back() -> None:
    limiter = RateLimiter(1, burst=2)
    await limiter.acquire(1)
    await _served_then_cancelled(limiter)
    assert limiter.stats().acquired == 1  # the grant was undone
    assert limiter.try_acquire()  # and the token is back


@pytest.mark.looptime
async def test_several_rates_give_back_on_cancel_after_grant() -> None:
    limiter = RateLimiter(1, burst=2, limits=[Limit(1, per=1, burst=2)])
    await limiter.acquire(1)
    await _served_then_cancelled(limiter)
    assert limiter.try_acquire()


@pytest.mark.looptime
async def test_timeout_raises_and_takes_nothing() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(1, burst=1)
    await limiter.acquire()
    start = loop.time()
    with pytest.raises(ResourceTimeoutError, match=r"within 0\.25 s"):
        await limiter.acquire(timeout=0.25)
    assert loop.time() - start == pytest.approx(0.25)
    later = asyncio.create_task(limiter.acquire())
    await later
    assert loop.time() - start == pytest.approx(1.0)
    assert limiter.stats().waiting == 0


@pytest.mark.looptime
async def test_timeout_of_the_head_lets_the_next_waiter_through() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(1, burst=2)
    await limiter.acquire(2)
    big = asyncio.create_task(limiter.acquire(2, timeout=0.5))
    small = asyncio.create_task(limiter.acquire(1))
    with pytest.raises(ResourceTimeoutError):
        await big
    start = loop.time()
    await small
    assert loop.time() == pytest.approx(1.0)
    assert loop.time() - start == pytest.approx(0.5)


@pytest.mark.looptime
async def test_several_rates_are_enforced_together() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(10, burst=10, limits=[Limit(20, per=60, burst=20)])
    start = loop.time()
    for _ in range(20):
        await limiter.acquire()
    # 10 at once, 10 more over the next second at 10/s
    assert loop.time() - start == pytest.approx(1.0)
    await limiter.acquire()
    # the per-minute bucket (1/3 token per second) refilled 1/3 during that second
    assert loop.time() - start == pytest.approx(3.0)
    assert limiter.stats().acquired == 21


def test_several_rates_try_acquire() -> None:
    clock = ManualClock()
    limiter = RateLimiter(10, burst=10, limits=[Limit(2, per=1, burst=2)], clock=clock)
    assert limiter.try_acquire(2)
    assert not limiter.try_acquire(1)
    assert limiter.available() == 0
    with pytest.raises(ConfigurationError, match="capacity"):
        limiter.try_acquire(3)  # larger than the smallest bucket


@pytest.mark.looptime
async def test_oversize_borrow_paces_large_requests() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(1, burst=1, oversize="borrow")
    start = loop.time()
    times = []
    for _ in range(3):
        await limiter.acquire(2.5)
        times.append(loop.time() - start)
    assert times == pytest.approx([0.0, 2.5, 5.0])


@pytest.mark.looptime
async def test_decorator_and_context_manager() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(2, burst=1)

    @limiter.limit
    async def bare(x: int) -> int:
        return x * 2

    @limiter.limit(tokens=0.5, timeout=10)
    async def half(x: int) -> int:
        return x + 1

    start = loop.time()
    assert await bare(2) == 4
    assert await half(1) == 2
    assert await half(1) == 2
    async with limiter as entered:
        assert entered is limiter
    assert loop.time() - start == pytest.approx(1.0)
    assert bare.__name__ == "bare"
    with pytest.raises(ConfigurationTypeError, match="coroutine functions"):
        limiter.limit(lambda: None)  # type: ignore[arg-type, return-value]


def test_repr_and_stats() -> None:
    limiter = RateLimiter(5, burst=2)
    assert "rate=5.0/s" in repr(limiter)
    stats = limiter.stats()
    assert stats == RateLimiterStats(rate=5.0, burst=2.0, available=2.0, waiting=0, acquired=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.acquired = 1  # type: ignore[misc]
    assert dataclasses.asdict(stats)["burst"] == 2.0


async def test_works_on_a_second_event_loop() -> None:
    limiter = RateLimiter(1000, burst=1)
    await limiter.acquire()

    def other_loop() -> None:
        asyncio.run(limiter.acquire(timeout=1))

    await asyncio.to_thread(other_loop)
    await limiter.acquire(timeout=1)


@pytest.mark.looptime
async def test_keyed_limiter_has_one_bucket_per_key() -> None:
    loop = asyncio.get_running_loop()
    limiter: KeyedRateLimiter[str] = KeyedRateLimiter(1, burst=1, max_keys=2)
    start = loop.time()
    await limiter.acquire("a")
    await limiter.acquire("b")
    assert loop.time() == start
    assert not limiter.try_acquire("a")
    await limiter.acquire("a")
    assert loop.time() - start == pytest.approx(1.0)
    assert len(limiter) == 2
    assert "a" in limiter
    await limiter.acquire("c")  # evicts the least recently used idle key: "b"
    assert "b" not in limiter
    assert len(limiter) == 2
    assert limiter.stats() == KeyedRateLimiterStats(keys=2, max_keys=2, waiting=0, acquired=3)


@pytest.mark.looptime
async def test_keyed_limiter_never_evicts_a_key_with_waiters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter: KeyedRateLimiter[str] = KeyedRateLimiter(1, burst=1, max_keys=1)
    await limiter.acquire("a")
    waiting = asyncio.create_task(limiter.acquire("a"))
    await asyncio.sleep(0)
    assert limiter.try_acquire("b")
    assert "a" in limiter
    assert "every one of 1 keys is busy" in caplog.text
    await waiting


def test_keyed_limiter_validates_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="max_keys"):
        KeyedRateLimiter(1, max_keys=0)
    with pytest.raises(ConfigurationError, match="rate"):
        KeyedRateLimiter(0)


def test_try_acquire_outside_a_loop_uses_the_monotonic_clock() -> None:
    limiter = RateLimiter(1, burst=2)
    assert limiter.try_acquire()
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    with pytest.raises(ConfigurationTypeError):
        limiter.try_acquire(None)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_no_timer_is_left_once_every_waiter_is_gone() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(1, burst=1)
    await limiter.acquire()
    tasks = [asyncio.create_task(limiter.acquire(timeout=5)) for _ in range(10)]
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert live == []
    assert limiter.stats().waiting == 0
    assert limiter.try_acquire(0.5) is False  # nothing was taken: the level is still 0
    await asyncio.sleep(1)
    assert limiter.try_acquire()
