"""Shared fixtures: a probe that measures, inside the tasks, how many run at once."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


class Probe:
    """Awaitable jobs that record how many of them run at the same time, and in what order."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.started: list[object] = []
        self.finished: list[object] = []
        self.cancelled: list[object] = []

    async def job(self, value: T, delay: float = 0.0) -> T:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.started.append(value)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(value)
            raise
        finally:
            self.now -= 1
        self.finished.append(value)
        return value

    async def fail(self, error: BaseException, delay: float = 0.0) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(delay)
        finally:
            self.now -= 1
        raise error


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def leftovers() -> Callable[[], set[asyncio.Task[Any]]]:
    """A function listing the running loop's tasks other than the current one."""

    def tasks() -> set[asyncio.Task[Any]]:
        gc.collect()  # a coroutine never awaited warns now, inside the test that made it
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    return tasks
