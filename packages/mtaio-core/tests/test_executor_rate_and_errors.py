"""The executor's rate is a token bucket (rate, burst), and collected errors form one group."""

import asyncio
from typing import Any

import pytest

from mtaio.core import TaskErrorGroup, TaskExecutor
from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    ExecutionError,
    MTAIOError,
    MTAIOErrorGroup,
)

pytestmark = pytest.mark.looptime


async def _starts(executor: TaskExecutor, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def record() -> None:
        starts.append(round(loop.time(), 6))

    await executor.gather(*(record() for _ in range(n)))
    return starts


async def test_a_burst_starts_at_once_then_the_bucket_refills_at_the_rate() -> None:
    async with TaskExecutor(rate=2, burst=3) as executor:
        assert await _starts(executor, 6) == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]
        await asyncio.sleep(10)  # a quiet spell refills the bucket, up to its capacity
        base = asyncio.get_running_loop().time()
        assert [s - base for s in await _starts(executor, 4)] == pytest.approx([0, 0, 0, 0.5])


async def test_the_default_burst_is_the_rate_limiters() -> None:
    # mtaio.resources.RateLimiter defaults to max(1, rate / 10): the same bucket here.
    assert TaskExecutor(rate=100).burst == 10
    assert TaskExecutor(rate=5).burst == 1
    assert TaskExecutor().burst is None
    async with TaskExecutor(rate=100) as executor:
        starts = await _starts(executor, 12)
    assert starts[:10] == [0.0] * 10 and starts[10:] == [0.01, 0.02]
    assert "rate=100/s burst=10" in repr(executor)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"rate": 1, "burst": 0.5}, ConfigurationError),
        ({"rate": 1, "burst": 0}, ConfigurationError),
        ({"rate": 1, "burst": float("nan")}, ConfigurationError),
        ({"rate": 1, "burst": "5"}, ConfigurationTypeError),
        ({"rate": 1, "burst": True}, ConfigurationTypeError),
        ({"burst": 5}, ConfigurationError),
    ],
)
def test_a_bad_burst_is_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="burst"):
        TaskExecutor(**kwargs)


async def test_collected_errors_are_one_group_that_except_star_splits() -> None:
    async def work(i: int) -> int:
        await asyncio.sleep(0.01 * (5 - i))
        if i == 1:
            raise ValueError(i)
        if i == 3:
            raise KeyError(i)
        if i == 4:
            raise asyncio.CancelledError  # the work cancels itself
        return i

    async with TaskExecutor(limit=2) as executor:
        with pytest.raises(TaskErrorGroup) as info:
            await executor.map(work, range(5), collect_errors=True)
        group = info.value
        assert isinstance(group, ExceptionGroup | MTAIOErrorGroup | ExecutionError)
        assert isinstance(group, MTAIOError)
        assert [type(e) for e in group.exceptions] == [ValueError, KeyError, ExecutionError]
        assert isinstance(group.exceptions[2].__cause__, asyncio.CancelledError)
        assert "3 of the 5 map tasks failed" in str(group)

        seen: list[str] = []
        try:
            await executor.gather(work(1), work(3), work(0), collect_errors=True)
        except* ValueError as values:
            seen.append(f"values {len(values.exceptions)}")
            assert isinstance(values, TaskErrorGroup)  # the split keeps the class
        except* KeyError:
            seen.append("keys")
        assert seen == ["values 1", "keys"]
