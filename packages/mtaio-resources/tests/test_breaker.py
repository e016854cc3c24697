import asyncio
import dataclasses

import pytest

from mtaio.exceptions import CircuitBreakerError, ConfigurationError, ConfigurationTypeError
from mtaio.resources import CircuitBreaker, CircuitBreakerStats, CircuitState
from mtaio.typing import ManualClock


def state_of(breaker: CircuitBreaker) -> CircuitState:
    return breaker.state  # a call: mypy does not narrow the property between checks


async def ok() -> str:
    return "ok"


async def fail() -> None:
    raise OSError("down")


async def test_state_transitions() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=10, clock=clock)
    assert state_of(breaker) is CircuitState.CLOSED
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    assert state_of(breaker) is CircuitState.CLOSED
    assert breaker.failures == 1
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    assert state_of(breaker) is CircuitState.OPEN

    with pytest.raises(CircuitBreakerError) as info:
        await breaker.call(ok)
    assert info.value.failures == 2
    assert info.value.reset_timeout == 10
    assert "next trial in 10 s" in str(info.value)

    clock.advance(10)
    assert state_of(breaker) is CircuitState.HALF_OPEN
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)  # the trial fails: open again for another 10 s
    assert state_of(breaker) is CircuitState.OPEN
    clock.advance(9)
    with pytest.raises(CircuitBreakerError):
        await breaker.call(ok)
    clock.advance(1)
    assert await breaker.call(ok) == "ok"  # the trial succeeds: closed
    assert state_of(breaker) is CircuitState.CLOSED
    assert breaker.failures == 0
    assert breaker.stats() == CircuitBreakerStats(
        state=CircuitState.CLOSED,
        failures=0,
        calls=4,
        successes=1,
        rejected=2,
        opened=2,  # tripped by the failures, then again by the failed trial
    )


async def test_stats_is_a_frozen_snapshot_holding_the_state_enum() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=ManualClock())
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    stats = breaker.stats()
    assert stats.state is CircuitState.OPEN
    assert stats.opened == 1
    assert stats.failures == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.opened = 0  # type: ignore[misc]
    with pytest.raises(CircuitBreakerError):
        await breaker.call(ok)
    assert stats.rejected == 0  # a snapshot: later calls do not change it
    assert breaker.stats().rejected == 1
    as_dict = dataclasses.asdict(stats)
    assert as_dict["state"] is CircuitState.OPEN
    assert as_dict["state"].value == "open"


async def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=1)
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    await breaker.call(ok)
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    assert state_of(breaker) is CircuitState.CLOSED


async def test_half_open_admits_one_trial_at_a_time() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    clock.advance(5)
    gate = asyncio.Event()

    @breaker
    async def trial() -> str:
        await gate.wait()
        return "done"

    first = asyncio.create_task(trial())
    await asyncio.sleep(0)
    with pytest.raises(CircuitBreakerError, match="half_open"):
        await trial()
    gate.set()
    assert await first == "done"
    assert state_of(breaker) is CircuitState.CLOSED
    assert trial.__name__ == "trial"


async def test_uncounted_errors_free_the_trial_slot() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1, failure_on=OSError, clock=clock)
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    clock.advance(1)

    async def wrong() -> None:
        raise ValueError("not a failure")

    with pytest.raises(ValueError, match="not a failure"):
        await breaker.call(wrong)
    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    breaker.record_failure()
    assert state_of(breaker) is CircuitState.OPEN
    breaker.reset()
    assert state_of(breaker) is CircuitState.CLOSED
    assert "closed" in repr(breaker)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="failure_threshold"):
        CircuitBreaker(0)
    with pytest.raises(ConfigurationError, match="reset_timeout"):
        CircuitBreaker(1, -1)
    with pytest.raises(ConfigurationError, match="half_open_max_calls"):
        CircuitBreaker(half_open_max_calls=0)
    with pytest.raises(ConfigurationTypeError):
        CircuitBreaker()(print)  # type: ignore[arg-type]


async def test_calls_failing_after_the_circuit_opened_do_not_reopen_it() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    release = asyncio.Event()

    async def slow_fail() -> None:
        await release.wait()
        raise OSError("down")

    late = [asyncio.create_task(breaker.call(slow_fail)) for _ in range(3)]
    await asyncio.sleep(0)  # all three admitted while closed
    with pytest.raises(OSError, match="down"):
        await breaker.call(fail)
    assert state_of(breaker) is CircuitState.OPEN
    clock.advance(6)
    release.set()
    for task in late:
        with pytest.raises(OSError, match="down"):
            await task
    assert breaker.stats().opened == 1  # the late failures did not open it again
    assert breaker.failures == 4
    clock.advance(4)  # the reset time counts from the first opening, not the late failures
    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is CircuitState.CLOSED
