"""The toolkit's retry vocabulary: re-raise by default, budgets, result predicates, blocks."""

import asyncio
import random
from collections.abc import Iterator

import pytest

from mtaio.exceptions import ConfigurationError, RetryError
from mtaio.resources import Attempt, Retry, retry, retrying, set_testing
from mtaio.typing import ManualClock


@pytest.fixture(autouse=True)
def _restore_testing() -> Iterator[None]:
    previous = set_testing(False)
    yield
    set_testing(previous)


async def test_giving_up_reraises_the_last_error_with_a_note() -> None:
    calls = 0

    @retry(attempts=3, delay=0, jitter=0)
    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"down {calls}")

    with pytest.raises(ConnectionError, match="down 3") as info:
        await down()
    assert calls == 3
    assert any("gave up after 3 attempt(s)" in note for note in info.value.__notes__)


async def test_reraise_false_keeps_the_wrapper() -> None:
    @retry(attempts=2, delay=0, jitter=0, reraise=False)
    async def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(RetryError) as info:
        await down()
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, ConnectionError)


def test_full_jitter_draws_the_whole_wait() -> None:
    policy = Retry(attempts=200, delay=1, factor=1, jitter="full", rng=random.Random(3))
    delays = list(policy.delays())
    assert all(0 <= d <= 1 for d in delays)
    assert min(delays) < 0.1 and max(delays) > 0.9
    assert "jitter='full'" in repr(policy)


def test_growth_stops_at_the_cap_without_overflow() -> None:
    policy = Retry(attempts=5000, delay=1, factor=1e10, max_delay=7, jitter=0)
    assert set(list(policy.delays())[1:]) == {7.0}


@pytest.mark.looptime
async def test_result_predicate_retries_then_gives_up() -> None:
    loop = asyncio.get_running_loop()
    results = iter([None, None, 5])
    seen: list[str] = []

    async def fetch() -> int | None:
        return next(results)

    def on_retry(attempt: int, error: BaseException, wait: float) -> None:
        seen.append(str(error))

    policy = Retry(attempts=3, delay=1, jitter=0, retry_if_result=lambda r: r is None)
    start = loop.time()
    assert (
        await Retry(
            attempts=3, delay=1, jitter=0, retry_if_result=lambda r: r is None, on_retry=on_retry
        ).call(fetch)
        == 5
    )
    assert loop.time() - start == pytest.approx(3.0)
    assert seen == ["result rejected by retry_if_result: None"] * 2

    async def never() -> None:
        return None

    with pytest.raises(RetryError, match="last result refused: None") as info:
        await policy.call(never)
    assert info.value.attempts == 3


@pytest.mark.looptime
async def test_attempt_timeout_cuts_a_slow_attempt_and_retries() -> None:
    calls = 0

    async def slow_then_fast() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(100)
        return "ok"

    policy = Retry(attempts=2, delay=0, jitter=0, attempt_timeout=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await policy.call(slow_then_fast) == "ok"
    assert loop.time() - start == pytest.approx(1.0)

    async def always_slow() -> None:
        await asyncio.sleep(100)

    with pytest.raises(TimeoutError) as info:
        await policy.call(always_slow)
    notes = "\n".join(info.value.__notes__)
    assert "took longer than 1" in notes and "gave up after 2" in notes


@pytest.mark.looptime
async def test_total_budget_stops_waits_and_cuts_the_running_attempt() -> None:
    loop = asyncio.get_running_loop()
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise OSError("down")

    start = loop.time()
    with pytest.raises(OSError, match="down"):
        await Retry(attempts=100, delay=1, factor=2, jitter=0, timeout=10).call(down)
    # waits 1, 2, 4 fit in the budget (7 s); the next (8 s) would end past it
    assert calls == 4
    assert loop.time() - start == pytest.approx(7.0)

    async def hangs() -> None:
        await asyncio.sleep(1000)

    start = loop.time()
    with pytest.raises(TimeoutError):
        await Retry(attempts=5, delay=0, jitter=0, timeout=3).call(hangs)
    assert loop.time() - start == pytest.approx(3.0)


async def test_budget_with_an_injected_clock() -> None:
    clock = ManualClock()
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)
        clock.advance(s)

    async def down() -> None:
        clock.advance(0.5)
        raise OSError("down")

    policy = Retry(attempts=10, delay=1, factor=1, jitter=0, timeout=4, sleep=sleep, clock=clock)
    with pytest.raises(OSError, match="down"):
        await policy.call(down)
    assert waits == [1.0, 1.0]


@pytest.mark.looptime
async def test_block_form_retries_the_block() -> None:
    loop = asyncio.get_running_loop()
    calls = 0
    numbers: list[int] = []
    start = loop.time()
    async for attempt in retrying(attempts=4, delay=1, factor=2, jitter=0):
        with attempt:
            assert isinstance(attempt, Attempt)
            numbers.append(attempt.number)
            calls += 1
            if calls < 3:
                raise ConnectionError
    assert numbers == [1, 2, 3]
    assert loop.time() - start == pytest.approx(3.0)

    async def still_down() -> None:
        async for attempt in Retry(attempts=2, delay=0, jitter=0):
            with attempt:
                raise ConnectionError("still down")

    with pytest.raises(ConnectionError) as info:
        await still_down()
    assert "gave up after 2 attempt(s)" in info.value.__notes__[-1]

    async def wrong() -> None:
        async for attempt in retrying(attempts=5, retry_on=OSError):
            with attempt:
                raise KeyError("x")

    # an error the policy does not retry leaves the loop at once
    with pytest.raises(KeyError):
        await wrong()


@pytest.mark.looptime
async def test_block_form_async_with_applies_the_attempt_timeout_and_result_check() -> None:
    got: list[int] = []
    async for attempt in retrying(
        attempts=3, delay=0, jitter=0, attempt_timeout=1, retry_if_result=lambda r: r < 2
    ):
        async with attempt:
            if attempt.number == 1:
                await asyncio.sleep(10)  # cut at 1 s, retried
            attempt.result = attempt.number
            got.append(attempt.number)
    assert got == [2]
    assert attempt.result == 2


def test_new_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="jitter"):
        Retry(jitter="half")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="attempt_timeout"):
        Retry(attempt_timeout=0)
    with pytest.raises(ConfigurationError, match="timeout"):
        Retry(timeout=-1)
    with pytest.raises(ConfigurationError, match="retry_if_result"):
        Retry(retry_if_result=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="reraise"):
        Retry(reraise=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="delay"):
        Retry(delay=float("inf"))
    with pytest.raises(ConfigurationError, match="testing"):
        set_testing("yes")  # type: ignore[arg-type]
