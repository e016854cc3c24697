import asyncio
import random
from collections.abc import Iterator

import pytest

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, RetryError
from mtaio.resources import Retry, is_testing, retry, set_testing


@pytest.fixture(autouse=True)
def _restore_testing() -> Iterator[None]:
    previous = set_testing(False)
    yield
    set_testing(previous)


def test_delays_grow_exponentially_and_cap() -> None:
    policy = Retry(attempts=6, delay=1, factor=3, max_delay=10, jitter=0)
    assert list(policy.delays()) == [1, 3, 9, 10, 10]


def test_jitter_stays_within_bounds() -> None:
    policy = Retry(attempts=50, delay=1, factor=1, jitter=0.5, rng=random.Random(7))
    delays = list(policy.delays())
    assert all(1 <= d <= 1.5 for d in delays)
    assert len(set(delays)) > 40


@pytest.mark.looptime
async def test_retries_then_succeeds_waiting_the_back_off() -> None:
    loop = asyncio.get_running_loop()
    calls = 0
    seen: list[tuple[int, float]] = []

    async def on_retry(attempt: int, error: BaseException, wait: float) -> None:
        seen.append((attempt, wait))

    @Retry(attempts=4, delay=1, factor=2, jitter=0, on_retry=on_retry)
    async def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("flaky")
        return x

    start = loop.time()
    assert await flaky(5) == 5
    assert calls == 3
    assert seen == [(1, 1.0), (2, 2.0)]
    assert loop.time() - start == pytest.approx(3.0)


async def test_gives_up_with_retry_error() -> None:
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    async def always() -> None:
        raise ConnectionError("down")

    policy = Retry(attempts=3, delay=0.5, jitter=0, sleep=fake_sleep, reraise=False)
    with pytest.raises(RetryError) as info:
        await policy.call(always)
    assert info.value.attempts == 3
    assert isinstance(info.value.last_error, ConnectionError)
    assert info.value.__cause__ is info.value.last_error
    assert sleeps == [0.5, 1.0]
    assert "attempts=3" in repr(policy)


async def test_only_matching_errors_are_retried() -> None:
    calls = 0

    @retry(attempts=5, retry_on=OSError, jitter=0, delay=0)
    async def wrong() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("not retried")

    with pytest.raises(ValueError, match="not retried"):
        await wrong()
    assert calls == 1

    by_predicate = Retry(retry_on=lambda e: "again" in str(e))
    assert by_predicate.retries(OSError("again"))
    assert not by_predicate.retries(OSError("stop"))
    assert not Retry(retry_on=(OSError, KeyError)).retries(ValueError())
    assert not Retry(retry_on=BaseException).retries(asyncio.CancelledError())


async def test_testing_switch_removes_the_waits() -> None:
    assert not is_testing()
    set_testing(True)
    assert is_testing()
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    calls = 0

    @retry
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError
        return "ok"

    assert await flaky() == "ok"
    policy = Retry(attempts=2, sleep=fake_sleep)
    with pytest.raises(OSError, match="never"):
        await policy.call(flaky_forever)
    assert sleeps == []


async def flaky_forever() -> None:
    raise OSError("never")


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="attempts"):
        Retry(attempts=0)
    with pytest.raises(ConfigurationError, match="delay"):
        Retry(delay=-1)
    with pytest.raises(ConfigurationError, match="factor"):
        Retry(factor=0)
    with pytest.raises(ConfigurationTypeError, match="retry_on"):
        Retry(retry_on=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="coroutine functions"):
        Retry()(print)  # type: ignore[arg-type]


def test_jitter_is_added_before_the_cap() -> None:
    # min(max_delay, delay * factor**n + U(0, jitter)), as mtaio.data.Retry computes it.
    policy = Retry(attempts=6, delay=1, factor=2, max_delay=3, jitter=2, rng=random.Random(11))
    draws = random.Random(11)
    expected = [min(3.0, base + draws.uniform(0, 2)) for base in (1, 2, 3, 3, 3)]
    assert list(policy.delays()) == expected
    assert max(expected) == 3.0  # the cap did apply to a jittered wait
