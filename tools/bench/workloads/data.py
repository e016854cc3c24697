"""Workloads "stream" (operator chains) and "pipeline" (three-stage pipelines).

stream: 1M integers from an async generator through map(x*2) -> filter(x%3==0) -> sum, and a
sliding window of 10 (step 1) over 200k items, against a hand-written chain of async
generators (the raw baseline), aiostream and reactivex (reactivex is synchronous: it reads
a plain range, which flatters it).

Slow peers run on a fraction of the items (``ops`` says how many): ops/s is a per-item cost,
so the ratios stay comparable and a round does not take minutes on a shared machine.

pipeline: 200k items through three async stages (parse, enrich, keep) against a raw loop
awaiting three coroutine functions per item, and aiostream's ``pipe.map`` chain.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from mtaio.data import Pipeline, Stage, Stream

from .._runner import Case, Options, Scenario, workload


async def numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def double(x: int) -> int:
    return x * 2


def div3(x: int) -> bool:
    return x % 3 == 0


def _expected_sum(n: int) -> int:
    return sum(x * 2 for x in range(n) if (x * 2) % 3 == 0)


def _map_filter_sum(n: int) -> Scenario:
    expected = _expected_sum(n)

    async def raw_map(it: AsyncIterator[int]) -> AsyncIterator[int]:
        async for x in it:
            yield x * 2

    async def raw_filter(it: AsyncIterator[int]) -> AsyncIterator[int]:
        async for x in it:
            if x % 3 == 0:
                yield x

    async def run_raw() -> None:
        total = 0
        async for x in raw_filter(raw_map(numbers(n))):
            total += x
        assert total == expected

    async def run_mtaio() -> None:
        total = await Stream(numbers(n)).map(double).filter(div3).reduce(operator.add, 0)
        assert total == expected

    async def run_mtaio_for() -> None:
        total = 0
        async for x in Stream(numbers(n)).map(double).filter(div3):
            total += x
        assert total == expected

    async def run_mtaio_sync() -> None:
        total = await Stream(range(n)).map(double).filter(div3).reduce(operator.add, 0)
        assert total == expected

    cases = [
        Case("raw async-generator chain", run_raw, n, raw=True),
        Case("mtaio Stream .reduce", run_mtaio, n),
        Case("mtaio Stream async for", run_mtaio_for, n),
        Case("mtaio Stream over range (sync source)", run_mtaio_sync, n),
    ]
    try:
        from aiostream import pipe, stream
    except ImportError:  # pragma: no cover - peers are optional
        pass
    else:
        small = max(1, n // 5)
        small_expected = _expected_sum(small)

        async def run_aiostream() -> None:
            xs = stream.iterate(numbers(small)) | pipe.map(double) | pipe.filter(div3)
            total = 0
            async with xs.stream() as s:
                async for x in s:
                    total += x
            assert total == small_expected

        cases.append(Case("aiostream (n/5 items)", run_aiostream, small))
    try:
        import reactivex
        from reactivex import operators as ops
    except ImportError:  # pragma: no cover
        pass
    else:

        def run_rx() -> None:
            out: list[int] = []
            reactivex.from_iterable(range(n)).pipe(
                ops.map(double), ops.filter(div3), ops.sum()
            ).subscribe(out.append)
            assert out == [expected]

        cases.append(Case("reactivex (sync, range source)", run_rx, n))
    return Scenario(f"map/filter/sum {n:,}", cases)


def _window(n: int, size: int = 10) -> Scenario:
    windows = n - size + 1

    async def raw_window(it: AsyncIterator[int]) -> AsyncIterator[list[int]]:
        buf: deque[int] = deque(maxlen=size)
        async for x in it:
            buf.append(x)
            if len(buf) == size:
                yield list(buf)

    async def run_raw() -> None:
        count = 0
        async for _ in raw_window(numbers(n)):
            count += 1
        assert count == windows

    async def run_mtaio() -> None:
        count = 0
        async for _ in Stream(numbers(n)).window(size):
            count += 1
        assert count == windows

    cases = [
        Case("raw async generator + deque", run_raw, n, raw=True),
        Case("mtaio Stream.window", run_mtaio, n),
    ]
    try:
        from aiostream import pipe, stream
    except ImportError:  # pragma: no cover
        pass
    else:

        def slide(acc: list[int], x: int) -> list[int]:
            return [*acc[1 - size :], x] if len(acc) >= size else [*acc, x]

        async def run_aiostream() -> None:
            xs = (
                stream.iterate(numbers(n))
                | pipe.accumulate(slide, initializer=[])
                | pipe.filter(lambda w: len(w) == size)
            )
            count = 0
            async with xs.stream() as s:
                async for _ in s:
                    count += 1
            assert count == windows

        cases.append(Case("aiostream accumulate", run_aiostream, n))
    try:
        import reactivex
        from reactivex import operators as ops
    except ImportError:  # pragma: no cover
        pass
    else:
        rx_n = max(size, n // 20)

        def run_rx() -> None:
            counter = [0]

            def seen(w: list[int]) -> None:
                if len(w) == size:
                    counter[0] += 1

            source = reactivex.from_iterable(range(rx_n))
            source.pipe(ops.buffer_with_count(size, 1)).subscribe(seen)
            assert counter[0] == rx_n - size + 1

        cases.append(Case("reactivex buffer_with_count (sync, n/20)", run_rx, rx_n))
    return Scenario(f"sliding window 10 over {n:,}", cases)


@workload("stream")
def stream_workload(options: Options) -> list[Scenario]:
    return [_map_filter_sum(options.scale(1_000_000)), _window(options.scale(200_000))]


# -- pipeline ------------------------------------------------------------------------


async def parse(x: int) -> dict[str, int]:
    return {"id": x, "value": x * 3}


async def enrich(d: dict[str, int]) -> dict[str, int]:
    d["score"] = d["value"] % 7
    return d


async def keep(d: dict[str, int]) -> dict[str, int] | None:
    return d if d["score"] else None


class Parse(Stage[int, dict[str, int]]):
    async def process(self, item: int) -> dict[str, int]:
        return {"id": item, "value": item * 3}


class Enrich(Stage[dict[str, int], dict[str, int]]):
    async def process(self, item: dict[str, int]) -> dict[str, int]:
        item["score"] = item["value"] % 7
        return item


class Keep(Stage[dict[str, int], dict[str, int]]):
    async def process(self, item: dict[str, int]) -> dict[str, int] | None:
        return item if item["score"] else None


def _three_stages(n: int) -> Scenario:
    expected = sum(1 for x in range(n) if (x * 3) % 7)

    async def run_raw() -> None:
        out = []
        for i in range(n):
            d = await parse(i)
            d = await enrich(d)
            r = await keep(d)
            if r is not None:
                out.append(r)
        assert len(out) == expected

    def make(buffer_size: int) -> Pipeline[int, dict[str, int]]:
        return (
            Pipeline[int, Any](buffer_size).add_stage(Parse()).add_stage(Enrich()).add_stage(Keep())
        )

    sequential = make(0)
    buffered = make(64)

    async def run_mtaio() -> None:
        assert len(await sequential.process_many(range(n))) == expected

    async def run_mtaio_process() -> None:
        process = sequential.process
        out = []
        for i in range(n):
            r = await process(i)
            if r is not None:
                out.append(r)
        assert len(out) == expected

    async def run_mtaio_buffered() -> None:
        assert len(await buffered.process_many(range(n))) == expected

    cases = [
        Case("raw: await three coroutines per item", run_raw, n, raw=True),
        Case("mtaio Pipeline.process_many", run_mtaio, n),
        Case("mtaio Pipeline.process per item", run_mtaio_process, n),
        Case("mtaio Pipeline(buffer_size=64) (3 tasks)", run_mtaio_buffered, n),
    ]
    try:
        from aiostream import pipe, stream
    except ImportError:  # pragma: no cover
        pass
    else:
        small = max(1, n // 5)
        small_expected = sum(1 for x in range(small) if (x * 3) % 7)

        async def run_aiostream() -> None:
            xs = (
                stream.iterate(range(small))
                | pipe.map(parse, task_limit=1)
                | pipe.map(enrich, task_limit=1)
                | pipe.map(keep, task_limit=1)
                | pipe.filter(lambda d: d is not None)
            )
            count = 0
            async with xs.stream() as s:
                async for _ in s:
                    count += 1
            assert count == small_expected

        cases.append(Case("aiostream pipe.map x3 (task_limit=1, n/5)", run_aiostream, small))
    return Scenario(f"3-stage pipeline over {n:,}", cases)


@workload("pipeline")
def pipeline_workload(options: Options) -> list[Scenario]:
    return [_three_stages(options.scale(200_000))]
