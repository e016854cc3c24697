"""Seed snippet 10 ("error recovery"): ResilientExecutor retries through TaskExecutor.run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mtaio.core import TaskExecutor
from mtaio.exceptions import MTAIOError, ResourceError

Loader = Callable[..., dict[str, Any]]


class Flaky(ResourceError):
    """The error the flaky task raises: an MTAIOError subclass the retry loop must see."""


def resilient(seed_snippet: Loader) -> Any:
    ns = seed_snippet(10, "from mtaio.typing import AsyncFunc\n")
    return ns["ResilientExecutor"]()


@pytest.mark.looptime
async def test_retries_with_exponential_backoff_until_success(seed_snippet: Loader) -> None:
    executor = resilient(seed_snippet)
    assert isinstance(executor.executor, TaskExecutor)
    assert executor.retry_count == 3
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def flaky(value: int, *, fail_times: int) -> int:
        attempts.append(loop.time())
        if len(attempts) <= fail_times:
            raise Flaky(f"attempt {len(attempts)} failed")
        return value * 2

    start = loop.time()
    assert await executor.execute_with_recovery(flaky, 21, fail_times=2) == 42
    assert len(attempts) == 3
    # Backoff 2**0 = 1 s after the first failure, 2**1 = 2 s after the second.
    assert [round(t - start, 6) for t in attempts] == [0.0, 1.0, 3.0]
    assert loop.time() - start == pytest.approx(3.0)
    assert executor.executor.stats().failed == 2
    assert executor.executor.stats().completed == 1
    await executor.executor.close()


@pytest.mark.looptime
async def test_the_last_error_reaches_the_caller_unchanged(seed_snippet: Loader) -> None:
    executor = resilient(seed_snippet)
    loop = asyncio.get_running_loop()
    raised: list[Flaky] = []

    async def always_fails() -> None:
        error = Flaky("still broken")
        raised.append(error)
        raise error

    start = loop.time()
    with pytest.raises(Flaky) as info:
        await executor.execute_with_recovery(always_fails)
    assert len(raised) == 3
    assert info.value is raised[-1]  # the very object the task raised, not a wrapper
    assert isinstance(info.value, MTAIOError)
    assert loop.time() - start == pytest.approx(3.0)  # slept 1 + 2 s, not after the last


@pytest.mark.looptime
async def test_errors_that_are_not_mtaio_errors_are_not_retried(seed_snippet: Loader) -> None:
    executor = resilient(seed_snippet)
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("not an MTAIOError")

    with pytest.raises(KeyError):
        await executor.execute_with_recovery(broken)
    assert calls == 1


def test_the_executor_is_created_without_a_running_loop(seed_snippet: Loader) -> None:
    executor = resilient(seed_snippet)
    assert executor.executor.stats().running == 0
    asyncio.run(executor.executor.close())  # nothing was started: closing is immediate
    assert executor.executor.closed
