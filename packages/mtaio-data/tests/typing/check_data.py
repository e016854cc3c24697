"""Type-checked, never run: the generics of mtaio.data as a user sees them."""

from __future__ import annotations

from typing import Any, assert_type

from mtaio.data import (
    BatchStage,
    Change,
    ChangeType,
    FilterStage,
    MapStage,
    ObservableStats,
    ObservableValue,
    Pipeline,
    Stage,
    Stream,
)


class Validate(Stage[dict[str, Any], dict[str, Any]]):
    async def process(self, data: dict[str, Any]) -> dict[str, Any]:
        return data


class Parse(Stage[str, int]):
    async def process(self, item: str) -> int:
        return int(item)


class Double(Stage[int, int]):
    async def process(self, item: int) -> int:
        return item * 2


class Show(Stage[str, str]):
    async def process(self, item: str) -> str:
        return item


class Describe(Stage[object, str]):
    async def process(self, item: object) -> str:
        return repr(item)


async def check_stream() -> None:
    s = Stream.from_iterable(range(3))
    assert_type(s, Stream[int])
    assert_type(s.map(str), Stream[str])

    async def to_float(x: int) -> float:
        return x / 2

    assert_type(s.map(to_float), Stream[float])
    assert_type(s.filter(lambda x: x > 1), Stream[int])
    assert_type(s.window(2), Stream[list[int]])
    assert_type(s.batch(2, timeout=1.0), Stream[list[int]])
    assert_type(s.enumerate(), Stream[tuple[int, int]])
    assert_type(await s.to_list(), list[int])
    assert_type(await s.reduce(lambda acc, x: acc + x, 0), int)
    assert_type(await s.first(), int)
    assert_type(await s.first(None), int | None)
    assert_type(await s.first(default="none"), int | str)
    assert_type(await s.last(), int)
    assert_type(await s.last(None), int | None)
    assert_type(await s.reduce(lambda a, b: a + b), int)
    assert_type(await s.reduce(lambda acc, x: acc + str(x), ""), str)
    assert_type(await s.reduce(fn=lambda acc, x: acc + x, initial=0.5), float)
    assert_type(s.scan(lambda a, b: a + b), Stream[int])
    assert_type(s.scan(lambda acc, x: [*acc, x], [0]), Stream[list[int]])
    assert_type(s.skip_while(lambda x: x < 2), Stream[int])
    assert_type(s.timeout(1.0), Stream[int])
    assert_type(s.zip(["a"]), Stream[tuple[int, str]])
    assert_type(s.zip(["a"], Stream.from_iterable([b"x"])), Stream[tuple[int, str, bytes]])
    assert_type(s.zip([1.0], ["a"], [None]), Stream[tuple[int, float, str, None]])
    assert_type(s.zip([1], [2], [3], [4]), Stream[tuple[Any, ...]])
    assert_type(await s.count(), int)
    async for item in s.take(2):
        assert_type(item, int)


async def check_pipeline() -> None:
    p: Pipeline[dict[str, Any], dict[str, Any]] = Pipeline()
    p.add_stage(Validate())
    assert_type(await p.process({}), dict[str, Any] | None)
    q = Pipeline[int, str]().add_stage(MapStage(str))
    assert_type(q, Pipeline[int, str, str])
    assert_type(await q.process_many([1]), list[str])

    # Each stage's input is checked against the previous output (the pipeline's input
    # for the first stage), and add_stage returns the stage's output type.
    parsed = Pipeline[str, int]().add_stage(Parse())
    assert_type(parsed, Pipeline[str, int, int])
    assert_type(await parsed.process("3"), int | None)
    Pipeline[str, int]().add_stage(Double())  # type: ignore[arg-type]
    Pipeline[str, int]().add_stage(Parse()).add_stage(Show())  # type: ignore[arg-type]
    finished: Pipeline[str, int] = Pipeline[str, int]().add_stage(Parse()).add_stage(Double())
    assert_type(await finished.process_many(["1"]), list[int])
    # Built in place under an annotation, the stages are not checked (the type is fixed).
    in_place: Pipeline[str, int] = Pipeline()
    in_place.add_stage(Parse())
    assert_type(await in_place.process("1"), int | None)
    # A stage accepting a wider input fits (stages are contravariant in their input).
    assert_type(parsed.add_stage(Describe()), Pipeline[str, int, str])
    # MapStage infers its input from the pipeline and its output from the function.
    inferred = Pipeline[int, int]().add_stage(MapStage(lambda x: x + 1))
    assert_type(inferred, Pipeline[int, int, int])
    assert_type(Pipeline[int, str]().add_stage(MapStage(str)), Pipeline[int, str, str])
    lambdas = (
        Pipeline[int, str]()
        .add_stage(MapStage(lambda x: x * 2.5))
        .add_stage(FilterStage(lambda x: x > 1))
        .add_stage(MapStage(lambda y: f"{y:.1f}"))
    )
    assert_type(lambdas, Pipeline[int, str, str])
    assert_type(MapStage[int, int](lambda x: x + 1), MapStage[int, int])
    assert_type(BatchStage[int, list[int]](3), BatchStage[int, list[int]])


async def check_observable() -> None:
    v = ObservableValue(1)
    assert_type(v.value, int)
    assert_type(v.stats(), ObservableStats)
    async for change in v:
        assert_type(change, Change[int])
        assert change.type is ChangeType.UPDATE
