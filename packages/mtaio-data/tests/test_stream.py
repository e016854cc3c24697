from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from mtaio.data import Stream
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, StreamError


async def agen(n: int, log: list[str] | None = None) -> AsyncIterator[int]:
    try:
        for i in range(n):
            yield i
    finally:
        if log is not None:
            log.append("closed")


class Counter:
    """A function that counts its calls, to prove each step runs once per item."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        return self.fn(x)


class AsyncCounter:
    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls = 0

    async def __call__(self, x: Any) -> Any:
        self.calls += 1
        await asyncio.sleep(0)
        return self.fn(x)


@pytest.mark.parametrize("source", ["sync", "async"])
async def test_map_filter_reduce_by_hand(source: str) -> None:
    # 0..9 doubled: 0,2,4,...,18; divisible by 3: 0,6,12,18 -> sum 36.
    double = Counter(lambda x: x * 2)
    div3 = Counter(lambda x: x % 3 == 0)
    src: Any = range(10) if source == "sync" else agen(10)
    s = Stream.from_iterable(src).map(double).filter(div3)
    assert await s.reduce(lambda a, b: a + b, 0) == 36
    assert double.calls == 10
    assert div3.calls == 10


async def test_long_chain_applies_each_step_exactly_once() -> None:
    counters = [Counter(lambda x: x + 1) for _ in range(20)]
    s: Stream[int] = Stream(agen(5))
    for c in counters:
        s = s.map(c)
    keep = Counter(lambda x: x % 2 == 0)
    # 0..4 + 20 -> 20..24, even: 20, 22, 24
    result = await s.filter(keep).map(lambda x: x * 10).to_list()
    assert result == [200, 220, 240]
    assert [c.calls for c in counters] == [5] * 20
    assert keep.calls == 5


async def test_async_steps_mixed_with_sync() -> None:
    amap = AsyncCounter(lambda x: x * 3)
    afilter = AsyncCounter(lambda x: x > 3)
    s = Stream(range(5)).map(lambda x: x + 1).map(amap).filter(afilter).map(str)
    assert await s.to_list() == ["6", "9", "12", "15"]
    assert amap.calls == 5
    assert afilter.calls == 5
    assert [x async for x in s] == ["6", "9", "12", "15"]


async def test_operators_return_new_streams_and_leave_original() -> None:
    base = Stream(range(4))
    doubled = base.map(lambda x: x * 2)
    assert await base.to_list() == [0, 1, 2, 3]
    assert await doubled.to_list() == [0, 2, 4, 6]
    assert await doubled.to_list() == [0, 2, 4, 6]  # a re-iterable source runs again


async def test_terminals() -> None:
    assert await Stream(range(5)).count() == 5
    assert await Stream(agen(5)).filter(lambda x: x > 2).count() == 2
    assert await Stream(agen(5)).first() == 0
    assert await Stream(range(5)).filter(lambda x: x > 2).first() == 3
    assert await Stream(range(0)).first(default=None) is None
    with pytest.raises(StreamError, match="empty"):
        await Stream(agen(0)).first()

    async def add(a: int, b: int) -> int:
        return a + b

    assert await Stream(range(5)).reduce(add, 100) == 110
    assert await Stream(agen(5)).reduce(add, 0) == 10
    assert await Stream(range(5)).map(lambda x: x).to_list() == [0, 1, 2, 3, 4]
    assert await Stream(agen(3)).to_list() == [0, 1, 2]
    assert await Stream(range(5)).map(AsyncCounter(lambda x: x)).reduce(lambda a, b: a + b, 0) == 10


async def test_first_closes_source() -> None:
    log: list[str] = []
    assert await Stream(agen(100, log)).map(lambda x: x + 1).first() == 1
    assert log == ["closed"]


def gen_sync(n: int, log: list[str]) -> Iterator[int]:
    try:
        yield from range(n)
    finally:
        log.append("closed")


async def test_sync_generator_source_closed() -> None:
    log: list[str] = []
    assert await Stream(gen_sync(100, log)).take(2).to_list() == [0, 1]
    assert log == ["closed"]
    log.clear()
    assert await Stream(gen_sync(100, log)).first() == 0
    assert log == ["closed"]
    log.clear()
    assert await Stream(gen_sync(3, log)).to_list() == [0, 1, 2]
    assert log == ["closed"]
    log.clear()
    assert await Stream(gen_sync(3, log)).map(lambda x: x).reduce(lambda a, b: a + b, 0) == 3
    assert log == ["closed"]


async def test_take_on_infinite_source_returns_and_closes() -> None:
    assert await Stream(itertools.count()).take(3).to_list() == [0, 1, 2]
    log: list[str] = []

    async def forever() -> AsyncIterator[int]:
        try:
            for i in itertools.count():
                yield i
        finally:
            log.append("closed")

    assert await Stream(forever()).map(lambda x: x * 2).take(3).to_list() == [0, 2, 4]
    assert log == ["closed"]
    assert await Stream(forever()).take(0).to_list() == []


async def test_breaking_out_closes_chain() -> None:
    log: list[str] = []
    it = Stream(agen(100, log)).map(lambda x: x).filter(lambda x: True).__aiter__()
    assert await it.__anext__() == 0
    await it.aclose()  # type: ignore[attr-defined]
    assert log == ["closed"]


async def test_skip_take_while_distinct_enumerate() -> None:
    assert await Stream(range(6)).skip(4).to_list() == [4, 5]
    assert await Stream(range(6)).take_while(lambda x: x < 3).to_list() == [0, 1, 2]

    async def small(x: int) -> bool:
        return x < 2

    assert await Stream(agen(6)).take_while(small).to_list() == [0, 1]
    assert await Stream([3, 1, 3, 2, 1]).distinct().to_list() == [3, 1, 2]
    assert await Stream(["a", "B", "A", "b"]).distinct(key=str.lower).to_list() == ["a", "B"]
    assert await Stream("ab").enumerate(1).to_list() == [(1, "a"), (2, "b")]


async def test_flat_map_sync_async() -> None:
    assert await Stream(range(3)).flat_map(lambda x: [x] * x).to_list() == [1, 2, 2]

    async def two(x: int) -> list[int]:
        return [x, -x]

    assert await Stream(range(1, 3)).flat_map(two).to_list() == [1, -1, 2, -2]
    assert await Stream(range(3)).flat_map(lambda x: agen(x)).to_list() == [0, 0, 1]


async def test_batch_and_window() -> None:
    assert await Stream(range(7)).batch(3).to_list() == [[0, 1, 2], [3, 4, 5], [6]]
    assert await Stream(range(6)).batch(3).to_list() == [[0, 1, 2], [3, 4, 5]]
    assert await Stream(range(5)).window(3).to_list() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert await Stream(range(7)).window(3, step=2).to_list() == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    assert await Stream(range(8)).window(2, step=3).to_list() == [[0, 1], [3, 4], [6, 7]]
    assert await Stream(range(2)).window(3).to_list() == []


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s: s.batch(0), "size"),
        (lambda s: s.window(0), "size"),
        (lambda s: s.window(2, step=0), "step"),
        (lambda s: s.take(-1), "n"),
        (lambda s: s.skip(-1), "n"),
        (lambda s: s.buffer(0), "n"),
        (lambda s: s.throttle(0), "rate"),
        (lambda s: s.debounce(0), "seconds"),
        (lambda s: s.batch_by_time(-1), "seconds"),
        (lambda s: s.batch(2, timeout=0), "timeout"),
        (lambda s: s.map(lambda x: x, concurrency=0), "concurrency"),
    ],
)
def test_bad_arguments_name_the_argument(call: Any, name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        call(Stream(range(3)))


def test_non_callables_and_non_iterables_rejected() -> None:
    s = Stream(range(3))
    with pytest.raises(ConfigurationTypeError, match="fn"):
        s.map(3)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationTypeError, match="predicate"):
        s.filter("x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="key"):
        s.distinct(key=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="source"):
        Stream(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="others"):
        s.merge(5)  # type: ignore[arg-type]


async def test_concurrent_map_keeps_order_and_limits_concurrency() -> None:
    running = 0
    peak = 0

    async def slow(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (10 - x))
        running -= 1
        return x * 2

    assert await Stream(range(10)).map(slow, concurrency=3).to_list() == [x * 2 for x in range(10)]
    assert peak == 3


async def test_concurrent_map_error_cancels_the_rest() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def work(x: int) -> int:
        started.append(x)
        if x == 0:
            await asyncio.sleep(0)
            raise ValueError("bad")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return x

    with pytest.raises(ValueError, match="bad"):
        await Stream(range(10)).map(work, concurrency=4).to_list()
    assert sorted(cancelled) == [1, 2, 3]


async def test_merge_zip_concat() -> None:
    merged = await Stream(agen(3)).merge(range(10, 12), Stream([20])).to_list()
    assert sorted(merged) == [0, 1, 2, 10, 11, 20]
    assert await Stream(range(3)).zip("abcd").to_list() == [(0, "a"), (1, "b"), (2, "c")]
    assert await Stream(range(2)).concat(agen(2), [9]).to_list() == [0, 1, 0, 1, 9]


async def test_merge_closes_all_sources_on_early_stop() -> None:
    log: list[str] = []
    assert len(await Stream(agen(100, log)).merge(agen(100, log)).take(3).to_list()) == 3
    assert log == ["closed", "closed"]


async def test_merge_propagates_errors() -> None:
    async def bad() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await Stream(bad()).merge(agen(5)).to_list()


async def test_buffer_reads_ahead_bounded_and_propagates_errors() -> None:
    produced = 0

    async def source() -> AsyncIterator[int]:
        nonlocal produced
        for i in range(1000):
            produced += 1
            yield i

    it = Stream(source()).buffer(5).__aiter__()
    assert await it.__anext__() == 0
    for _ in range(5):
        await asyncio.sleep(0)
    assert produced <= 2 * 5 + 1  # 5 waiting, 5 taken for handing out, 1 in the pump's hand
    await it.aclose()  # type: ignore[attr-defined]

    async def bad() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await Stream(bad()).buffer(2).to_list()
    assert await Stream(range(5)).buffer(2).to_list() == [0, 1, 2, 3, 4]


async def test_repr_mentions_steps() -> None:
    def double(x: int) -> int:
        return x * 2

    assert "map(double)" in repr(Stream([1]).map(double))


class Doubler(Stream[int]):
    """A subclass keeping extra state and its own methods through a chain."""

    def __init__(self, source: Any, factor: int = 2) -> None:
        super().__init__(source)
        self.factor = factor

    def scaled(self) -> Stream[int]:
        return self.map(lambda x: x * self.factor)


async def test_subclass_survives_chaining() -> None:
    s = Doubler.from_iterable(range(3))
    assert type(s) is Doubler
    chained = s.filter(lambda x: x > 0)
    assert isinstance(chained, Doubler)
    assert await chained.scaled().to_list() == [2, 4]
    taken = Doubler(range(3), factor=5).take(2)
    assert isinstance(taken, Doubler)
    assert await taken.scaled().to_list() == [0, 5]
