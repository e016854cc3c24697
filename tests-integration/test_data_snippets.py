"""Seed snippets 7 and 8 (mtaio.data), run verbatim through the ``seed_snippet`` fixture."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

import pytest

from mtaio.data import Pipeline, Stage, Stream

Loader = Callable[..., dict[str, Any]]


async def test_snippet_7_batch_stage_returns_none_until_full(seed_snippet: Loader) -> None:
    ns = seed_snippet(7)
    stage_cls = ns["BatchProcessingStage"]
    assert issubclass(stage_cls, Stage)
    assert ns["Pipeline"] is Pipeline

    stage = stage_cls(3)  # never calls super().__init__()
    pipeline: Pipeline[Any, Any] = ns["Pipeline"]()
    pipeline.add_stage(stage)
    async with pipeline:
        results = [await pipeline.process(i) for i in range(7)]
    assert results == [None, None, [0, 1, 2], None, None, [3, 4, 5], None]
    assert stage.batch == [6]  # the partial batch is the stage's own state
    stats = pipeline.stats()[0]
    assert (stats.name, stats.items_in, stats.items_out) == ("BatchProcessingStage", 7, 2)


async def test_snippet_7_stage_in_process_many(seed_snippet: Loader) -> None:
    ns = seed_snippet(7)
    pipeline = Pipeline[int, list[int]]().add_stage(ns["BatchProcessingStage"](2))
    # The snippet's stage has no flush(): the odd item stays in its batch.
    assert await pipeline.process_many(range(5)) == [[0, 1], [2, 3]]


async def test_snippet_8_subclass_replaces_window(seed_snippet: Loader) -> None:
    ns = seed_snippet(8)
    processor_cls = ns["StreamProcessor"]
    assert issubclass(processor_cls, Stream)

    stream = processor_cls.from_iterable(range(6))
    assert type(stream) is processor_cls
    windows = [w async for w in stream.window(3)]
    assert windows == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]

    slid = [w async for w in processor_cls.from_iterable(range(6)).window(2, slide=2)]
    assert slid == [[0, 1], [2, 3], [4, 5]]

    # Operators keep the subclass, so its own window() is used after a map.
    mapped = processor_cls.from_iterable(range(4)).map(lambda x: x * 10)
    assert type(mapped) is processor_cls
    assert [w async for w in mapped.window(2)] == [[0, 10], [10, 20], [20, 30]]


class FakeTime:
    """Stands in for the ``time`` module the snippet reads: a clock moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


async def test_snippet_8_batch_by_time_with_fake_clock(seed_snippet: Loader) -> None:
    ns = seed_snippet(8)
    clock = FakeTime()
    ns["time"] = types.SimpleNamespace(monotonic=clock.monotonic)

    async def source() -> Any:
        # Items arrive 0.4 s apart on the fake clock.
        for i in range(7):
            yield i
            clock.now += 0.4

    stream = ns["StreamProcessor"].from_iterable(source())
    batches = [b async for b in stream.batch_by_time(1.0)]
    # start 0.0: items 0 (0.0), 1 (0.4), 2 (0.8), 3 (1.2 >= 1.0 -> emit [0..3]);
    # start 1.2: 4 (1.6), 5 (2.0), 6 (2.4 -> emit); the snippet never flushes a tail.
    assert batches == [[0, 1, 2, 3], [4, 5, 6]]


@pytest.mark.looptime
async def test_builtin_batch_by_time_on_the_loop_clock() -> None:
    async def source() -> Any:
        for i in range(5):
            yield i
            await asyncio.sleep(0.4)

    batches = [b async for b in Stream.from_iterable(source()).batch_by_time(1.0)]
    assert batches == [[0, 1, 2], [3, 4]]
