"""Every bad value is refused at the call, naming the argument; the object stays usable.

The values of issue 15 go to every numeric parameter of mtaio.core's public API. A value is
either accepted or refused with a ConfigurationError (ConfigurationTypeError for a wrong
type) whose message names the argument; either way the object works afterwards.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.core import AsyncQueue, Latch, LIFOQueue, PriorityQueue, TaskExecutor
from mtaio.exceptions import ConfigurationError
from mtaio.testing import (
    BAD_VALUES,
    check_value,
    is_real,
    non_negative,
    non_negative_int,
    optional,
    positive,
    positive_int,
)


async def job() -> int:
    return 1


async def executor_works(ex: TaskExecutor) -> None:
    assert await ex.run(job()) == 1
    assert await ex.gather(job(), job()) == [1, 1]
    assert await ex.submit(job()) == 1


@dataclass(frozen=True)
class Case:
    """One parameter: how to feed it a value, which values it accepts, the check after."""

    name: str  # the argument the error must name
    call: Callable[[Any], Awaitable[object]]
    accepts: Callable[[object], bool]


def _executor_kw(key: str) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        kwargs = {key: v, "rate": 1000} if key == "burst" else {key: v}
        try:
            ex = TaskExecutor(**kwargs)
        except ConfigurationError:
            ex = TaskExecutor()
            raise
        finally:
            async with TaskExecutor() as fresh:
                await executor_works(fresh)
        async with ex:
            await executor_works(ex)
        return ex

    return call


def _on_executor(method: str) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        async with TaskExecutor(limit=4) as ex:
            try:
                if method == "set_limit":
                    ex.set_limit(v)
                elif method == "run":
                    await ex.run(job(), timeout=v)
                elif method == "submit":
                    await ex.submit(job(), priority=v)
                elif method == "gather":
                    await ex.gather(job(), limit=v)
                elif method == "map":
                    await ex.map(lambda x: job(), [1, 2], limit=v)
                elif method == "as_completed":
                    async with ex.as_completed(job(), limit=v) as results:
                        assert [r async for r in results] == [1]
                elif method == "map_unordered":
                    async with ex.map_unordered(lambda x: job(), [1], limit=v) as results:
                        assert [r async for r in results] == [1]
            finally:
                await executor_works(ex)  # usable whatever happened
        return ex

    return call


def _queue(cls: type[Any]) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        queue = cls(maxsize=v)
        await queue.put(1)
        assert await queue.get() == 1
        return queue

    return call


def _priority(method: str) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        queue: PriorityQueue[str] = PriorityQueue()
        await queue.put("first", priority=-math.inf)  # FIFO among equals
        try:
            if method == "put":
                await queue.put("x", priority=v)
            else:
                queue.put_nowait("x", priority=v)
        finally:
            await queue.put("last", priority=math.inf)
            got = [await queue.get() for _ in range(queue.qsize())]
            assert got[0] == "first" and got[-1] == "last"
        return queue

    return call


def _latch(method: str) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        if method == "init":
            latch = Latch(v)
            if latch.count:
                latch.count_down_nowait(latch.count)
        else:
            latch = Latch(2)
            try:
                if method == "count_down":
                    await latch.count_down(v)
                elif method == "count_down_nowait":
                    latch.count_down_nowait(v)
                else:
                    latch.count_down_nowait(2)
                    assert await latch.wait(timeout=v)
            finally:
                latch.count_down_nowait(2)
        assert await latch.wait(timeout=0)
        return latch

    return call


def _not_awaitable(method: str) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        async with TaskExecutor(limit=2) as ex:
            try:
                if method == "run":
                    return await ex.run(v)
                if method == "submit":
                    return await ex.submit(v)
                if method == "gather":
                    return await ex.gather(job(), v)
                if method == "map":
                    return await ex.map(v, [1])
                if method == "iterables":
                    return await ex.map(lambda x: job(), v)
                if method == "as_completed":
                    async with ex.as_completed(v) as results:
                        return [r async for r in results]
                return await ex.run_in_thread(v)
            finally:
                await executor_works(ex)

    return call


CALLABLE_CASES = (
    Case("awaitable", _not_awaitable("run"), lambda v: False),
    Case("awaitable", _not_awaitable("submit"), lambda v: False),
    Case("aws[1]", _not_awaitable("gather"), lambda v: False),
    Case("aws[0]", _not_awaitable("as_completed"), lambda v: False),
    Case("func", _not_awaitable("map"), lambda v: False),
    Case("iterables[0]", _not_awaitable("iterables"), lambda v: isinstance(v, str)),
    Case("func", _not_awaitable("run_in_thread"), lambda v: False),
    Case("thread_pool", _executor_kw("thread_pool"), lambda v: v is None),
)

CASES = (
    *CALLABLE_CASES,
    Case("max_workers", _executor_kw("max_workers"), optional(positive_int)),
    Case("limit", _executor_kw("limit"), optional(positive_int)),
    Case("rate", _executor_kw("rate"), optional(positive)),
    Case("burst", _executor_kw("burst"), optional(lambda v: positive(v) and v >= 1)),  # type: ignore[operator]
    Case("limit", _on_executor("set_limit"), optional(positive_int)),
    Case("timeout", _on_executor("run"), optional(positive)),
    Case("priority", _on_executor("submit"), is_real),
    Case("limit", _on_executor("gather"), optional(positive_int)),
    Case("limit", _on_executor("map"), optional(positive_int)),
    Case("limit", _on_executor("as_completed"), optional(positive_int)),
    Case("limit", _on_executor("map_unordered"), optional(positive_int)),
    Case("maxsize", _queue(AsyncQueue), non_negative_int),
    Case("maxsize", _queue(LIFOQueue), non_negative_int),
    Case("maxsize", _queue(PriorityQueue), non_negative_int),
    Case("priority", _priority("put"), is_real),
    Case("priority", _priority("put_nowait"), is_real),
    Case("count", _latch("init"), non_negative_int),
    Case("n", _latch("count_down"), positive_int),
    Case("n", _latch("count_down_nowait"), positive_int),
    Case("timeout", _latch("wait"), optional(non_negative)),
)


async def _check(case: Case, value: object) -> None:
    await check_value(case.name, value, case.accepts, case.call)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(CASES), st.sampled_from(BAD_VALUES))
def test_every_value_is_accepted_or_refused_by_name(case: Case, value: object) -> None:
    asyncio.run(_check(case, value))
