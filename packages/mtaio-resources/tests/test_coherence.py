"""One set of rules: timeouts are TimeoutErrors, breakers have names, objects have reprs."""

import asyncio
import logging

import pytest

from mtaio.exceptions import (
    CircuitBreakerError,
    ResourceLimitError,
    ResourceTimeoutError,
)
from mtaio.resources import (
    CircuitBreaker,
    CircuitState,
    ConcurrencyLimiter,
    KeyedRateLimiter,
    RateLimiter,
    ResourceLimiter,
)
from mtaio.typing import ManualClock


@pytest.mark.looptime
async def test_every_wait_that_runs_out_is_a_timeout_error() -> None:
    rate = RateLimiter(0.1, 1)  # one token every 10 s: every wait below runs out
    await rate.acquire()
    permits = ConcurrencyLimiter(1)
    await permits.acquire()
    both = ResourceLimiter(rate=0.1, concurrency=1, timeout=0.5)
    await both.acquire()
    keyed: KeyedRateLimiter[str] = KeyedRateLimiter(0.1, 1)
    await keyed.acquire("a")
    for wait in (
        rate.acquire(timeout=0.5),
        permits.acquire(timeout=0.5),
        both.acquire(),
        keyed.acquire("a", timeout=0.5),
    ):
        with pytest.raises(TimeoutError) as info:
            await wait
        assert isinstance(info.value, ResourceTimeoutError)
        assert isinstance(info.value, ResourceLimitError)
        assert info.value.timeout == 0.5


async def test_a_grant_handed_back_by_a_cancelled_waiter_is_not_counted() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # hands the permit to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = limiter.stats()
    assert stats.acquired == 1
    assert stats.borrowed == 0


def test_reprs_say_what_the_object_is() -> None:
    keyed: KeyedRateLimiter[str] = KeyedRateLimiter(10, 2, max_keys=5)
    keyed.try_acquire("a")
    assert repr(keyed) == "KeyedRateLimiter(rate=10.0/s, burst=2.0, keys=1, max_keys=5)"
    assert (
        repr(ResourceLimiter(rate=5, concurrency=2, timeout=1))
        == "ResourceLimiter(rate=5.0/s, burst=1.0, concurrency=2, borrowed=0, timeout=1.0)"
    )
    assert repr(ResourceLimiter(concurrency=3)) == (
        "ResourceLimiter(rate=None, concurrency=3, borrowed=0, timeout=None)"
    )


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("mtaio.resources").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


async def test_breaker_names_itself_and_tells_listeners(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(2, reset_timeout=10, clock=clock, name="payments")
    changes: list[tuple[str, CircuitState, CircuitState]] = []

    def listener(b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        changes.append((b.name, old, new))

    def broken(b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(listener)
    breaker.add_listener(broken)
    caplog.set_level(logging.INFO, logger="mtaio.resources")
    for _ in range(2):
        with pytest.raises(OSError, match="down"):
            async with breaker:
                raise OSError("down")
    assert breaker.state is CircuitState.OPEN
    assert "circuit 'payments' opened after 2 failure(s)" in caplog.text
    assert "listener bug" in caplog.text or "state listener" in caplog.text
    breaker.remove_listener(broken)
    breaker.remove_listener(broken)  # not added any more: ignored
    with pytest.raises(CircuitBreakerError, match="circuit 'payments' is open"):
        async with breaker:
            pass
    clock.advance(10)
    async with breaker:  # the half-open trial succeeds
        pass
    assert breaker.stats().state is CircuitState.CLOSED
    assert changes == [
        ("payments", CircuitState.CLOSED, CircuitState.OPEN),
        ("payments", CircuitState.OPEN, CircuitState.HALF_OPEN),
        ("payments", CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    assert "name='payments'" in repr(breaker)


async def test_breaker_block_without_a_verdict_frees_the_trial_slot() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(1, reset_timeout=1, clock=clock, failure_on=OSError)
    with pytest.raises(OSError, match="down"):
        async with breaker:
            raise OSError("down")
    clock.advance(1)
    with pytest.raises(KeyError):
        async with breaker:  # the trial: no verdict from a KeyError
            raise KeyError("x")
    assert breaker.state is CircuitState.HALF_OPEN
    async with breaker:  # the slot is free again
        pass
    assert breaker.stats().state is CircuitState.CLOSED
