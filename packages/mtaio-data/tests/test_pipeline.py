from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mtaio.data import (
    BatchStage,
    DeadLetter,
    FilterStage,
    MapStage,
    Pipeline,
    Retry,
    Stage,
    StageStats,
)
from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    PipelineError,
    StageError,
)


class Validate(Stage[dict[str, Any], dict[str, Any]]):
    async def process(self, data: dict[str, Any]) -> dict[str, Any]:
        if "user_id" not in data:
            raise ValueError("user_id missing")
        return data


class Enrich(Stage[dict[str, Any], dict[str, Any]]):
    async def process(self, data: dict[str, Any]) -> dict[str, Any]:
        data["seen"] = True
        return data


class Lifecycle(Stage[int, int]):
    """Records setup/cleanup calls in a shared log."""

    def __init__(self, log: list[str], tag: str = "", fail_setup: bool = False) -> None:
        super().__init__(name=f"life{tag}")
        self.log = log
        self.tag = tag
        self.fail_setup = fail_setup

    async def setup(self) -> None:
        await asyncio.sleep(0)
        if self.fail_setup:
            raise RuntimeError("setup failed")
        self.log.append(f"setup{self.tag}")

    async def cleanup(self) -> None:
        await asyncio.sleep(0)
        self.log.append(f"cleanup{self.tag}")

    async def process(self, item: int) -> int:
        return item


class NoInit(Stage[int, int]):
    """Never calls super().__init__(): name, policy and stats use class defaults."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    async def process(self, item: int) -> int:
        return item + self.offset


class Split(Stage[str, str]):
    """Fan-out: one input, several outputs, through an async generator method."""

    async def process(self, item: str) -> AsyncIterator[str]:
        for ch in item:
            yield ch


class Flaky(Stage[int, int]):
    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures
        self.calls = 0

    async def process(self, item: int) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"flaky {self.calls}")
        return item


async def test_dict_stages_default_pipeline() -> None:
    pipeline: Pipeline[dict[str, Any], dict[str, Any]] = Pipeline()
    pipeline.add_stage(Validate())
    pipeline.add_stage(Enrich())
    async with pipeline:
        assert await pipeline.process({"user_id": 1}) == {"user_id": 1, "seen": True}


async def test_raise_policy_is_stage_error_naming_stage_and_item_with_cause() -> None:
    pipeline = Pipeline[dict[str, Any], dict[str, Any]]().add_stage(Validate()).add_stage(Enrich())
    with pytest.raises(StageError) as info:
        await pipeline.process({"name": "x"})
    error = info.value
    assert error.stage == "Validate"
    assert error.item == {"name": "x"}
    assert isinstance(error.__cause__, ValueError)
    assert "Validate" in str(error)
    assert "'name'" in str(error)
    assert isinstance(error, PipelineError)
    stats = pipeline.stats()
    assert stats[0].failed == 1
    assert stats[1].items_in == 0  # the failed item went no further


async def test_none_result_means_nothing_passed_on() -> None:
    seen: list[int] = []

    def record(x: int) -> int:
        seen.append(x)
        return x

    p = (
        Pipeline[int, int]()
        .add_stage(FilterStage(lambda x: x % 2 == 0))
        .add_stage(MapStage(record))
    )
    assert [await p.process(i) for i in range(4)] == [0, None, 2, None]
    assert seen == [0, 2]


async def test_stage_without_init_has_defaults() -> None:
    stage = NoInit(5)
    assert stage.name == "NoInit"
    assert stage.on_error == "raise"
    assert stage.stats() == StageStats("NoInit")
    p = Pipeline[int, int]().add_stage(stage)
    assert await p.process(1) == 6
    assert stage.stats().items_in == 1
    assert stage.stats().items_out == 1
    stage.name = "renamed"
    assert p.stats()[0].name == "renamed"
    assert repr(stage) == "<NoInit 'renamed'>"


async def test_map_filter_stages_sync_and_async() -> None:
    async def inc(x: int) -> int:
        return x + 1

    async def odd(x: int) -> bool:
        return x % 2 == 1

    p = (
        Pipeline[int, int]()
        .add_stage(MapStage(inc))
        .add_stage(FilterStage(odd))
        .add_stage(MapStage(lambda x: x * 10))
    )
    assert await p.process_many(range(6)) == [10, 30, 50]
    assert p.stats()[0].name == "map(test_map_filter_stages_sync_and_async.<locals>.inc)"
    assert [s.items_out for s in p.stats()] == [6, 3, 3]


async def test_batch_stage_flushes_last_partial_batch() -> None:
    p = Pipeline[int, list[int]]().add_stage(BatchStage(3))
    assert await p.process_many(range(7)) == [[0, 1, 2], [3, 4, 5], [6]]

    async def total(batch: list[int]) -> int:
        return sum(batch)

    p2 = Pipeline[int, str]().add_stage(BatchStage(2, total)).add_stage(MapStage(str))
    assert await p2.process_many(range(5)) == ["1", "5", "4"]
    assert await p2.flush() == []


async def test_process_then_flush_by_hand() -> None:
    p = Pipeline[int, list[list[int]]]().add_stage(BatchStage(2)).add_stage(BatchStage(2))
    assert [await p.process(i) for i in range(5)] == [None, None, None, [[0, 1], [2, 3]], None]
    assert await p.flush() == [[[4]]]


async def test_batch_subclass_overrides_process_batch() -> None:
    class Sum(BatchStage[int, int]):
        async def process_batch(self, batch: list[int]) -> int:
            return sum(batch)

    assert await Pipeline[int, int]().add_stage(Sum(2)).process_many([1, 2, 3]) == [3, 3]


async def test_fan_out_stage() -> None:
    p = Pipeline[str, str]().add_stage(Split()).add_stage(MapStage(str.upper))
    assert await p.process_many(["ab", "", "c"]) == ["A", "B", "C"]
    assert await p.process_all("xy") == ["X", "Y"]
    assert await p.process("z") == "Z"
    assert await p.process("") is None
    with pytest.raises(PipelineError, match="2 outputs"):
        await p.process("no")
    assert p.stats()[0].items_out == 3 + 2 + 1 + 2


async def test_coroutine_returning_async_iterator_and_sync_process() -> None:
    class Coro(Stage[int, int]):
        async def process(self, item: int) -> AsyncIterator[int]:
            async def gen() -> AsyncIterator[int]:
                yield item
                yield item

            return gen()

    class Sync(Stage[int, int]):
        def process(self, item: int) -> int:  # type: ignore[override]
            return item + 1

    p = Pipeline[int, int]().add_stage(Coro()).add_stage(Sync())
    assert await p.process_many([1, 2]) == [2, 2, 3, 3]


async def test_skip_policy() -> None:
    p = Pipeline[dict[str, Any], dict[str, Any]]().add_stage(Validate(), on_error="skip")
    out = await p.process_many([{"user_id": 1}, {}, {"user_id": 2}])
    assert out == [{"user_id": 1}, {"user_id": 2}]
    stats = p.stats()[0]
    assert (stats.failed, stats.skipped, stats.items_in, stats.items_out) == (1, 1, 3, 2)


async def test_dead_letter_policy_sync_and_async() -> None:
    letters: list[tuple[Any, str]] = []

    async def dead(item: Any, error: Exception) -> None:
        letters.append((item, type(error).__name__))

    stage = Validate(on_error=DeadLetter(dead))
    p = Pipeline[dict[str, Any], dict[str, Any]]().add_stage(stage)
    assert await p.process({}) is None
    assert letters == [({}, "ValueError")]
    assert p.stats()[0].dead_lettered == 1

    p2 = Pipeline[dict[str, Any], dict[str, Any]]().add_stage(
        Validate(), on_error=DeadLetter(lambda i, e: letters.append((i, "sync")))
    )
    await p2.process({"x": 1})
    assert letters[-1] == ({"x": 1}, "sync")


@pytest.mark.looptime
async def test_retry_with_backoff_then_succeeds() -> None:
    loop = asyncio.get_running_loop()
    stage = Flaky(2, on_error=Retry(attempts=3, delay=1.0, factor=2.0, jitter=0))
    p = Pipeline[int, int]().add_stage(stage)
    start = loop.time()
    assert await p.process(7) == 7
    assert loop.time() - start == pytest.approx(3.0)  # waits 1 s, then 2 s
    stats = p.stats()[0]
    assert (stats.retried, stats.failed, stats.items_in, stats.items_out) == (2, 0, 1, 1)


@pytest.mark.looptime
async def test_retry_exhausted_raises_with_last_cause() -> None:
    p = Pipeline[int, int]().add_stage(Flaky(5), on_error=Retry(attempts=3, delay=0.5))
    with pytest.raises(StageError) as info:
        await p.process(1)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert str(info.value.__cause__) == "flaky 3"
    assert p.stats()[0].retried == 2


@pytest.mark.looptime
async def test_retry_then_skip_and_retry_on_filter() -> None:
    p = Pipeline[int, int]().add_stage(Flaky(5), on_error=Retry(attempts=2, then="skip"))
    assert await p.process(1) is None
    assert p.stats()[0].skipped == 1
    # Not a retryable type: straight to `then`, no retry made.
    stage = Flaky(5)
    p2 = Pipeline[int, int]().add_stage(stage, on_error=Retry(retry_on=(KeyError,)))
    with pytest.raises(StageError):
        await p2.process(1)
    assert stage.calls == 1


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="buffer_size"):
        Pipeline(buffer_size=-1)
    with pytest.raises(ConfigurationTypeError, match="stage"):
        Pipeline().add_stage(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="batch_size"):
        BatchStage(0)
    with pytest.raises(ConfigurationTypeError, match="process_batch"):
        BatchStage(2, process_batch=3)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationTypeError, match="fn"):
        MapStage(3)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationTypeError, match="predicate"):
        FilterStage(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="on_error"):
        Pipeline().add_stage(NoInit(1), on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="concurrency"):
        Pipeline().add_stage(NoInit(1), concurrency=0)
    with pytest.raises(ConfigurationError, match="attempts"):
        Retry(attempts=0)
    with pytest.raises(ConfigurationError, match="then"):
        Retry(then=Retry())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="callback"):
        DeadLetter(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="name"):
        MapStage(str, name=5)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        Stage()  # type: ignore[abstract]


async def test_stream_rejects_non_iterable() -> None:
    with pytest.raises(ConfigurationTypeError, match="items"):
        await Pipeline().process_many(5)  # type: ignore[arg-type]


async def test_stages_constructor_argument_and_properties() -> None:
    stage = NoInit(1)
    p = Pipeline[int, int](buffer_size=2, stages=[stage])
    assert p.stages == (stage,)
    assert p.buffer_size == 2


# -- the context manager -------------------------------------------------------------


async def test_context_is_reentrant_and_shared_across_tasks() -> None:
    log: list[str] = []
    p = Pipeline[int, int]().add_stage(Lifecycle(log, "A")).add_stage(Lifecycle(log, "B"))
    gate = asyncio.Event()

    async def user(i: int) -> int | None:
        async with p:
            await gate.wait()
            return await p.process(i)

    tasks = [asyncio.create_task(user(i)) for i in range(5)]
    await asyncio.sleep(0.01)
    assert log == ["setupA", "setupB"]  # once, although five tasks entered
    gate.set()
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
    assert log == ["setupA", "setupB", "cleanupB", "cleanupA"]  # once, after the last exit

    async with p, p:  # nested in one task
        pass
    assert log[-4:] == ["setupA", "setupB", "cleanupB", "cleanupA"]


async def test_cleanup_runs_on_error() -> None:
    log: list[str] = []
    p = Pipeline[int, int]().add_stage(Lifecycle(log)).add_stage(Flaky(1))
    with pytest.raises(StageError):
        async with p:
            await p.process(1)
    assert log == ["setup", "cleanup"]


async def test_cleanup_runs_on_cancellation_and_with_other_users_pending() -> None:
    log: list[str] = []
    p = Pipeline[int, int]().add_stage(Lifecycle(log))

    async def hold(seconds: float) -> None:
        async with p:
            await asyncio.sleep(seconds)

    short = asyncio.create_task(hold(0.001))
    long = asyncio.create_task(hold(100))
    await asyncio.sleep(0.01)
    assert short.done()
    assert log == ["setup"]  # the long user still holds the context
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    assert log == ["setup", "cleanup"]


async def test_failed_setup_cleans_up_what_was_set_up() -> None:
    log: list[str] = []
    p = (
        Pipeline[int, int]()
        .add_stage(Lifecycle(log, "A"))
        .add_stage(Lifecycle(log, "B", fail_setup=True))
    )
    with pytest.raises(RuntimeError, match="setup failed"):
        async with p:
            pytest.fail("not reached")
    assert log == ["setupA", "cleanupA"]
    # A later entry tries again.
    p.stages[1].fail_setup = False  # type: ignore[attr-defined]
    async with p:
        pass
    assert log[-4:] == ["setupA", "setupB", "cleanupB", "cleanupA"]


async def test_failing_cleanup_still_cleans_the_others() -> None:
    log: list[str] = []

    class BadCleanup(Lifecycle):
        async def cleanup(self) -> None:
            raise OSError("cannot close")

    p = Pipeline[int, int]().add_stage(Lifecycle(log, "A")).add_stage(BadCleanup(log, "B"))
    with pytest.raises(PipelineError, match="cleanup") as info:
        async with p:
            pass
    assert isinstance(info.value.__cause__, OSError)
    assert log == ["setupA", "setupB", "cleanupA"]
    # With an error already in flight, the cleanup failure is only logged.
    with pytest.raises(KeyError):
        async with p:
            raise KeyError("body")


async def test_cancelled_cleanup_finishes_the_others() -> None:
    log: list[str] = []

    class CancelledCleanup(Lifecycle):
        async def cleanup(self) -> None:
            raise asyncio.CancelledError

    p = Pipeline[int, int]().add_stage(Lifecycle(log, "A")).add_stage(CancelledCleanup(log, "B"))
    with pytest.raises(asyncio.CancelledError):
        async with p:
            pass
    assert log == ["setupA", "setupB", "cleanupA"]


# -- concurrent engine -----------------------------------------------------------------


async def test_buffered_pipeline_runs_stages_concurrently() -> None:
    active: set[str] = set()
    overlap = False

    def stage(tag: str) -> MapStage[int, int]:
        async def work(x: int) -> int:
            nonlocal overlap
            active.add(tag)
            if len(active) > 1:
                overlap = True
            await asyncio.sleep(0.001)
            active.discard(tag)
            return x + 1

        return MapStage(work, name=tag)

    p = Pipeline[int, int](buffer_size=4).add_stage(stage("a")).add_stage(stage("b"))
    assert await p.process_many(range(20)) == [x + 2 for x in range(20)]
    assert overlap


async def test_concurrency_keeps_order_and_caps_running() -> None:
    running = 0
    peak = 0

    async def work(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * ((x * 7) % 5))
        running -= 1
        return x

    p = Pipeline[int, list[int]]().add_stage(MapStage(work, concurrency=4)).add_stage(BatchStage(5))
    assert await p.process_many(range(12)) == [
        list(range(5)),
        list(range(5, 10)),
        [10, 11],
    ]
    assert peak == 4


@pytest.mark.looptime
async def test_slow_head_does_not_stall_others_within_the_buffer() -> None:
    started: list[int] = []

    async def work(x: int) -> int:
        started.append(x)
        await asyncio.sleep(100 if x == 0 else 0.01)
        return x

    p = Pipeline[int, int](buffer_size=5).add_stage(MapStage(work, concurrency=2))
    task = asyncio.create_task(p.process_many(range(200)))
    await asyncio.sleep(50)
    # 2 running at once, up to 2 + 5 items in flight behind the slow head.
    assert 7 <= len(started) <= 8
    assert await task == list(range(200))


@pytest.mark.looptime
async def test_backpressure_bounds_memory_with_slow_last_stage() -> None:
    pulled = 0

    def source() -> Any:
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield i

    async def slow(x: int) -> int:
        await asyncio.sleep(1)
        return x

    p = (
        Pipeline[int, int](buffer_size=10)
        .add_stage(MapStage(lambda x: x + 1))
        .add_stage(MapStage(lambda x: x * 2))
        .add_stage(MapStage(slow))
    )
    before = len(asyncio.all_tasks())
    consumed = 0
    async with p:
        stream = p.stream(source())
        async for _ in stream:
            consumed += 1
            # Four buffers of 10 (each holding up to 2 x 10: the waiting items and the batch
            # being handed out) plus an item in each task's hand: bounded, far below 1M.
            assert pulled - consumed <= 4 * (2 * 10 + 1) + 4
            if consumed == 100:
                break
        await stream.aclose()
    assert pulled < 200
    assert len(asyncio.all_tasks()) == before  # every pump task is gone


async def test_buffered_pipeline_error_propagates_and_stops_tasks() -> None:
    before = len(asyncio.all_tasks())
    p = Pipeline[int, int](buffer_size=3).add_stage(MapStage(lambda x: 1 // (x - 5)))
    with pytest.raises(StageError) as info:
        await p.process_many(range(100))
    assert info.value.item == 5
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert len(asyncio.all_tasks()) == before


async def test_buffered_pipeline_with_async_source_fan_out_and_flush() -> None:
    async def words() -> AsyncIterator[str]:
        for w in ["ab", "cd", "e"]:
            yield w

    p = Pipeline[str, list[str]](buffer_size=2).add_stage(Split()).add_stage(BatchStage(2))
    assert await p.process_many(words()) == [["a", "b"], ["c", "d"], ["e"]]


async def test_sequential_stream_with_async_source_closes_it() -> None:
    log: list[str] = []

    async def source() -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
        finally:
            log.append("closed")

    p = Pipeline[int, int]().add_stage(MapStage(lambda x: x * 2))
    results = p.stream(source())
    assert [await results.__anext__() for _ in range(3)] == [0, 2, 4]
    await results.aclose()
    assert log == ["closed"]
    assert await p.process_many(source()) == [x * 2 for x in range(100)]


async def test_flush_error_is_a_stage_error() -> None:
    class BadFlush(Stage[int, int]):
        async def process(self, item: int) -> int:
            return item

        async def flush(self) -> int:
            raise RuntimeError("flush")

    with pytest.raises(StageError, match="BadFlush") as info:
        await Pipeline[int, int]().add_stage(BadFlush()).process_many([1])
    assert info.value.item is None


async def test_flush_fan_out() -> None:
    class Tail(Stage[int, int]):
        async def process(self, item: int) -> None:
            return None

        async def flush(self) -> AsyncIterator[int]:
            async def gen() -> AsyncIterator[int]:
                yield 1
                yield 2

            return gen()

    assert await Pipeline[int, int]().add_stage(Tail()).process_many([0]) == [1, 2]
    assert await Pipeline[int, int](buffer_size=1).add_stage(Tail()).process_many([0]) == [1, 2]


def test_stats_time_is_counted() -> None:
    async def main() -> list[StageStats]:
        p = Pipeline[int, int]().add_stage(MapStage(lambda x: x))
        await p.process_many(range(100))
        return p.stats()

    stats = asyncio.run(main())
    assert stats[0].seconds > 0
    assert stats[0].items_in == 100


async def test_sequential_stream_yields_as_items_come_and_flushes() -> None:
    p = Pipeline[int, list[int]]().add_stage(BatchStage(2))
    results = p.stream(range(5))
    assert await results.__anext__() == [0, 1]
    assert [x async for x in results] == [[2, 3], [4]]
    fan = Pipeline[str, str]().add_stage(Split())
    assert [x async for x in fan.stream(["ab", "c"])] == ["a", "b", "c"]


async def test_fan_out_error_goes_through_the_policy() -> None:
    class Broken(Stage[int, int]):
        async def process(self, item: int) -> AsyncIterator[int]:
            yield item
            raise RuntimeError("mid-stream")

    p = Pipeline[int, str]().add_stage(Broken(), on_error="skip").add_stage(MapStage(str))
    assert await p.process_many([1, 2]) == []  # a failed attempt's outputs are discarded
    assert p.stats()[0].skipped == 2


async def test_snippet_1_shape_shared_context_and_validation_errors() -> None:
    """Handlers entering one pipeline concurrently, one event failing validation."""
    log: list[str] = []
    pipeline: Pipeline[dict[str, Any], dict[str, Any]] = Pipeline()
    pipeline.add_stage(Lifecycle(log))
    pipeline.add_stage(Validate())
    pipeline.add_stage(Enrich())
    processed: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    async def handle(data: dict[str, Any]) -> None:
        try:
            async with pipeline:
                await asyncio.sleep(0)
                processed.append(await pipeline.process(data) or {})
        except StageError as exc:
            errors.append(exc)

    events: list[dict[str, Any]] = [{"user_id": 1}, {"name": "x"}, {"user_id": 2}]
    await asyncio.gather(*(handle(d) for d in events))
    assert processed == [{"user_id": 1, "seen": True}, {"user_id": 2, "seen": True}]
    assert len(errors) == 1
    assert isinstance(errors[0].__cause__, ValueError)
    assert log == ["setup", "cleanup"]  # one set-up, one clean-up for the three handlers


@pytest.mark.looptime
async def test_cancelling_a_buffered_stream_consumer_stops_every_task() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(0.001)
        return x

    p = Pipeline[int, int](buffer_size=4).add_stage(MapStage(slow, concurrency=3))
    p.add_stage(MapStage(lambda x: x))
    before = len(asyncio.all_tasks())
    consumed: list[int] = []
    enough = asyncio.Event()

    async def consume() -> None:
        async for x in p.stream(range(1_000_000)):
            consumed.append(x)
            if len(consumed) == 20:
                enough.set()

    task = asyncio.create_task(consume())
    await enough.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(asyncio.all_tasks()) == before
    assert consumed == list(range(len(consumed)))


async def test_concurrent_engine_fan_out_filter_skip_and_sync_process() -> None:
    class SyncSplit(Stage[str, str]):
        def process(self, item: str) -> AsyncIterator[str]:  # a sync method returning outputs
            async def gen() -> AsyncIterator[str]:
                for ch in item:
                    yield ch

            return gen()

    async def picky(ch: str) -> str:
        if ch == "x":
            raise ValueError(ch)
        return ch.upper()

    p = (
        Pipeline[str, str](buffer_size=2)
        .add_stage(SyncSplit())
        .add_stage(Split(), concurrency=2)
        .add_stage(FilterStage(lambda ch: ch != "b"), concurrency=2)
        .add_stage(MapStage(picky), on_error="skip", concurrency=3)
    )
    assert await p.process_many(["abx", "cd"]) == ["A", "C", "D"]
    assert p.stats()[3].skipped == 1
