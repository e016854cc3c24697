"""reduce without an initial value, one-shot sources, and scan, last, skip_while, timeout."""

from __future__ import annotations

import asyncio
import builtins
import operator
from collections.abc import AsyncIterator, Iterator

import pytest

from mtaio.data import Stream
from mtaio.exceptions import ConfigurationError, StreamError
from mtaio.exceptions import TimeoutError as MTAIOTimeoutError


async def agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def same(x: int) -> int:
    return x


async def add_async(a: int, b: int) -> int:
    return a + b


@pytest.mark.parametrize("kind", ["sync", "async", "fused-async"])
async def test_reduce_without_initial_folds_from_the_first_item(kind: str) -> None:
    def make(n: int) -> Stream[int]:
        if kind == "sync":
            return Stream(range(n))
        if kind == "async":
            return Stream(agen(n))
        return Stream(range(n)).map(lambda x: x).filter(lambda x: True).map(same)

    seen: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        seen.append((a, b))
        return a + b

    assert await make(4).reduce(add) == 6
    assert seen == [(0, 1), (1, 2), (3, 3)]  # functools.reduce's calls, not 0 + everything
    assert await make(1).reduce(add) == 0
    assert await make(4).reduce(add_async) == 6
    assert await make(3).reduce(add, 10) == 13
    for n in (0,):
        with pytest.raises(TypeError, match="empty stream with no initial value"):
            await make(n).reduce(add)
        with pytest.raises(TypeError, match="empty stream"):
            await make(n).reduce(add_async)
        assert await make(n).reduce(add, 7) == 7


async def test_a_sync_reduce_error_that_is_not_about_emptiness_is_not_rewritten() -> None:
    def bad(a: int, b: int) -> int:
        raise TypeError("mine")

    with pytest.raises(TypeError, match="mine"):
        await Stream(range(3)).reduce(bad)


def numbers() -> Iterator[int]:
    yield from range(3)


@pytest.mark.parametrize("make", [lambda: numbers(), lambda: agen(3), lambda: iter([0, 1, 2])])
async def test_a_one_shot_source_read_twice_raises(make: object) -> None:
    s: Stream[int] = Stream(make())  # type: ignore[operator]
    doubled = s.map(lambda x: x * 2)
    assert await doubled.to_list() == [0, 2, 4]
    with pytest.raises(StreamError, match="one-shot"):
        await s.to_list()  # the same source, read through another stream of it
    with pytest.raises(StreamError, match="one-shot"):
        async for _ in doubled:
            pass
    # A re-iterable source reads again, as before.
    again = Stream(range(3))
    assert await again.to_list() == await again.to_list() == [0, 1, 2]
    assert repr(Stream(iter([]))).startswith("Stream(<list_iterator")


async def test_scan_gives_every_intermediate_fold() -> None:
    assert await Stream(range(1, 5)).scan(operator.add).to_list() == [1, 3, 6, 10]
    assert await Stream(range(1, 4)).scan(operator.add, 100).to_list() == [100, 101, 103, 106]
    assert await Stream(agen(4)).scan(add_async).to_list() == [0, 1, 3, 6]
    assert await Stream(agen(0)).scan(operator.add).to_list() == []
    assert await Stream(agen(0)).scan(operator.add, 5).to_list() == [5]


async def test_last() -> None:
    assert await Stream(range(5)).last() == 4
    assert await Stream(agen(5)).filter(lambda x: x < 3).last() == 2
    assert await Stream(agen(0)).last(None) is None
    with pytest.raises(StreamError, match="empty"):
        await Stream(range(0)).last()


async def test_skip_while() -> None:
    assert await Stream([1, 2, 5, 1, 7]).skip_while(lambda x: x < 3).to_list() == [5, 1, 7]

    async def small(x: int) -> bool:
        return x < 2

    assert await Stream(agen(4)).skip_while(small).to_list() == [2, 3]
    assert await Stream(agen(3)).skip_while(lambda x: True).to_list() == []


@pytest.mark.looptime
async def test_timeout_fails_a_late_item_with_mtaios_timeout_error() -> None:
    closed: list[bool] = []

    async def slow() -> AsyncIterator[int]:
        try:
            for delay in (0.5, 0.5, 2.0, 0.1):
                await asyncio.sleep(delay)
                yield int(delay * 10)
        finally:
            closed.append(True)

    got: list[int] = []

    async def consume() -> None:
        async for item in Stream(slow()).timeout(1.0):
            got.append(item)
            await asyncio.sleep(5)  # the consumer's own time does not count

    with pytest.raises(builtins.TimeoutError, match="within 1") as info:
        await consume()
    assert got == [5, 5]
    assert isinstance(info.value, MTAIOTimeoutError)
    assert info.value.timeout == 1.0
    assert closed == [True]
    assert await Stream(agen(3)).timeout(0.1).to_list() == [0, 1, 2]
    with pytest.raises(ConfigurationError, match="seconds"):
        Stream(agen(1)).timeout(0)


def test_throttle_refuses_an_infinite_period() -> None:
    with pytest.raises(ConfigurationError, match="per"):
        Stream(range(3)).throttle(1, per=float("inf"))
