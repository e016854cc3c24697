"""Every bad value is refused at the call, naming the argument; the object stays usable.

The values of issue 15 go to every numeric parameter of mtaio.data's public API. A value is
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

from mtaio.data import (
    BatchStage,
    FilterStage,
    MapStage,
    ObservableValue,
    Pipeline,
    Retry,
    Stream,
)
from mtaio.testing import (
    BAD_VALUES,
    check_value,
    is_int,
    non_negative,
    non_negative_int,
    optional,
    positive,
    positive_int,
)


def finite_positive(v: object) -> bool:
    return positive(v) and v != math.inf


async def double(x: int) -> int:
    return 2 * x


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Any], Awaitable[object]]
    accepts: Callable[[object], bool]


def _stream(op: Callable[[Stream[int], Any], Stream[Any]]) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        source = Stream([7])
        try:
            derived = op(source, v)
            # One item: accepted values never make it wait (a huge period, a long timeout).
            assert len(await derived.to_list()) <= 1
        finally:
            assert await source.map(double).to_list() == [14]  # still usable
        return derived

    return call


def _pipeline(build: Callable[[Any], Pipeline[int, int]]) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        try:
            p = build(v)
        finally:
            fresh = Pipeline[int, int]().add_stage(MapStage(double))
            assert await fresh.process_many([1, 2]) == [2, 4]
        assert await p.process_many([1, 2]) in ([2, 4], [[1, 2]], [1, 2])
        return p

    return call


def _retry(key: str) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        policy = Retry(**{key: v})
        assert 0 <= policy.wait(0) <= policy.max_delay
        p = Pipeline[int, int]().add_stage(MapStage(double), on_error=policy)
        assert await p.process(2) == 4
        return policy

    return call


async def _observable(v: Any) -> object:
    value = ObservableValue(1, maxsize=v)
    await value.set(2)
    assert value.value == 2
    return value


def _added(v: Any) -> Pipeline[int, int]:
    p = Pipeline[int, int]()
    try:
        return p.add_stage(MapStage(double), concurrency=v)
    finally:
        assert p.stages == () or len(p.stages) == 1


def never(v: object) -> bool:
    return False  # no value of the list is callable


async def _terminal(v: Any) -> object:
    source = Stream([7])
    try:
        return await source.reduce(v)
    finally:
        assert await source.to_list() == [7]


async def _observer(v: Any) -> object:
    obs = ObservableValue(1)
    try:
        obs.add_observer(v)
    finally:
        seen: list[int | None] = []
        obs.add_observer(lambda change: seen.append(change.value))
        await obs.set(2)
        assert seen == [2]
    return obs


def _stage(build: Callable[[Any], Any]) -> Callable[[Any], Awaitable[object]]:
    async def call(v: Any) -> object:
        stage = build(v)
        return await Pipeline[int, Any]().add_stage(stage).process_many([1])

    return call


CALLABLE_CASES = (
    Case("fn", _stream(lambda s, v: s.map(v)), never),
    Case("predicate", _stream(lambda s, v: s.filter(v)), never),
    Case("fn", _stream(lambda s, v: s.flat_map(v)), never),
    Case("predicate", _stream(lambda s, v: s.take_while(v)), never),
    Case("predicate", _stream(lambda s, v: s.skip_while(v)), never),
    Case("key", _stream(lambda s, v: s.distinct(v)), lambda v: v is None),
    Case("fn", _stream(lambda s, v: s.scan(v)), never),
    Case("fn", _terminal, never),
    Case("observer", _observer, never),
    Case("fn", _stage(MapStage), never),
    Case("predicate", _stage(FilterStage), never),
    Case("process_batch", _stage(lambda v: BatchStage(1, v)), lambda v: v is None),
    Case("stage", _pipeline(lambda v: Pipeline().add_stage(v)), never),
    Case("source", _stream(lambda s, v: Stream(v)), lambda v: isinstance(v, str)),  # iterable
)

CASES = (
    *CALLABLE_CASES,
    Case("concurrency", _stream(lambda s, v: s.map(double, concurrency=v)), positive_int),
    Case("n", _stream(lambda s, v: s.take(v)), non_negative_int),
    Case("n", _stream(lambda s, v: s.skip(v)), non_negative_int),
    Case("size", _stream(lambda s, v: s.batch(v)), positive_int),
    Case("timeout", _stream(lambda s, v: s.batch(2, timeout=v)), optional(positive)),
    Case("seconds", _stream(lambda s, v: s.batch_by_time(v)), positive),
    Case("size", _stream(lambda s, v: s.window(v)), positive_int),
    Case("step", _stream(lambda s, v: s.window(1, v)), positive_int),
    Case("rate", _stream(lambda s, v: s.throttle(v)), positive),
    Case("per", _stream(lambda s, v: s.throttle(1, v)), finite_positive),
    Case("seconds", _stream(lambda s, v: s.timeout(v)), positive),
    Case("seconds", _stream(lambda s, v: s.debounce(v)), positive),
    Case("n", _stream(lambda s, v: s.buffer(v)), positive_int),
    Case("start", _stream(lambda s, v: s.enumerate(v)), is_int),
    Case(
        "buffer_size",
        _pipeline(lambda v: Pipeline(v).add_stage(MapStage(double))),
        non_negative_int,
    ),
    Case("concurrency", _pipeline(_added), optional(positive_int)),  # None: the stage's
    Case(
        "concurrency",
        _pipeline(lambda v: Pipeline().add_stage(MapStage(double, concurrency=v))),
        positive_int,
    ),
    Case(
        "concurrency",
        _pipeline(lambda v: Pipeline().add_stage(FilterStage(bool, concurrency=v))),
        positive_int,
    ),
    Case("batch_size", _pipeline(lambda v: Pipeline().add_stage(BatchStage(v))), positive_int),
    Case("attempts", _retry("attempts"), positive_int),
    Case("delay", _retry("delay"), non_negative),
    Case("factor", _retry("factor"), positive),
    Case("max_delay", _retry("max_delay"), non_negative),
    Case("jitter", _retry("jitter"), non_negative),
    Case("maxsize", _observable, non_negative_int),
)


async def _check(case: Case, value: object) -> None:
    await check_value(case.name, value, case.accepts, case.call)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(CASES), st.sampled_from(BAD_VALUES))
def test_every_value_is_accepted_or_refused_by_name(case: Case, value: object) -> None:
    asyncio.run(_check(case, value))
