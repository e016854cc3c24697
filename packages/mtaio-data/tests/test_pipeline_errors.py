"""Every failure of a pipeline call in one PipelineErrorGroup; the shared retry vocabulary."""

from __future__ import annotations

import asyncio
import itertools
import math
import pickle
import random
from typing import Any

import pytest

from mtaio.data import MapStage, Pipeline, PipelineErrorGroup, Retry, Stage
from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    MTAIOErrorGroup,
    PipelineError,
    StageError,
)


class Check(Stage[int, int]):
    """Fails on odd items after ``delay(item)`` seconds."""

    def __init__(self, delays: dict[int, float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delays = delays or {}

    async def process(self, item: int) -> int:
        await asyncio.sleep(self.delays.get(item, 0))
        if item % 2:
            raise ValueError(f"odd {item}")
        return item


async def test_a_failure_is_a_group_that_is_also_the_stage_error_of_old() -> None:
    p = Pipeline[int, int]().add_stage(Check(name="check"))
    with pytest.raises(PipelineErrorGroup) as info:
        await p.process(3)
    group = info.value
    assert isinstance(group, StageError | PipelineError | MTAIOErrorGroup | ExceptionGroup)
    assert (group.stage, group.item) == ("check", 3)
    assert isinstance(group.__cause__, ValueError)
    (error,) = group.exceptions
    assert error is group.__cause__
    assert error.__notes__ == ["mtaio.data: in stage 'check', item 3"]
    assert "stage 'check' failed on item 3" in str(group)
    copy = pickle.loads(pickle.dumps(group))
    assert (type(copy), copy.stage, copy.item) == (PipelineErrorGroup, "check", 3)

    caught: list[str] = []
    try:
        await p.process_many([1])
    except* ValueError as values:
        caught.append(str(values.exceptions[0]))
        assert isinstance(values, PipelineErrorGroup)  # the split keeps class and attributes
        assert values.stage == "check"
    assert caught == ["odd 1"]


@pytest.mark.looptime
@pytest.mark.parametrize("buffer_size", [0, 4])
async def test_concurrent_failures_are_all_reported(buffer_size: int) -> None:
    # Item 0 is slow, so 1 and 3 fail while it runs; 5 has not failed yet when 1 is reached.
    # With a buffer the stage reads 4 more items ahead (4 running at once): 7 fails too.
    stage = Check({0: 1.0, 5: 10.0}, name="check")
    p = Pipeline[int, int](buffer_size).add_stage(stage, concurrency=4)
    with pytest.raises(PipelineErrorGroup) as info:
        await p.process_many(range(8))
    group = info.value
    expected = ["odd 1", "odd 3"] + (["odd 7"] if buffer_size else [])
    assert [str(e) for e in group.exceptions] == expected
    assert (group.stage, group.item) == ("check", 1)
    assert str(group).startswith(f"{len(expected)} items failed in the pipeline; the first: ")
    assert [e.__notes__ for e in group.exceptions][:2] == [
        ["mtaio.data: in stage 'check', item 1"],
        ["mtaio.data: in stage 'check', item 3"],
    ]
    with pytest.raises(PipelineErrorGroup) as again:
        async for _ in p.stream(range(8)):
            pass
    assert len(again.value.exceptions) == len(expected)


async def test_several_failed_cleanups_are_one_group() -> None:
    class BadCleanup(Stage[int, int]):
        async def process(self, item: int) -> int:
            return item

        async def cleanup(self) -> None:
            raise OSError(f"cannot close {self.name}")

    p = Pipeline[int, int]().add_stage(BadCleanup(name="a")).add_stage(BadCleanup(name="b"))
    with pytest.raises(PipelineErrorGroup, match="cleanup of 2 stage") as info:
        async with p:
            pass
    assert [str(e) for e in info.value.exceptions] == ["cannot close b", "cannot close a"]
    assert info.value.stage == "b" and info.value.item is None
    assert info.value.exceptions[1].__notes__ == ["mtaio.data: in the cleanup of stage 'a'"]


@pytest.mark.looptime
async def test_retry_waits_delay_times_factor_capped_by_max_delay() -> None:
    policy = Retry(attempts=5, delay=1.0, factor=3.0, max_delay=5.0, jitter=0)
    assert [policy.wait(n) for n in range(4)] == [1.0, 3.0, 5.0, 5.0]
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    def always(x: int) -> int:
        calls.append(loop.time())
        raise ConnectionError(x)

    p = Pipeline[int, int]().add_stage(MapStage(always), on_error=policy)
    with pytest.raises(PipelineErrorGroup):
        await p.process(1)
    assert [round(b - a, 6) for a, b in itertools.pairwise(calls)] == [1, 3, 5, 5]


def test_retry_defaults_and_jitter_are_the_toolkits() -> None:
    policy = Retry()
    assert (policy.attempts, policy.delay, policy.factor, policy.max_delay, policy.jitter) == (
        3,
        0.1,
        2.0,
        30.0,
        0.1,
    )
    random.seed(5)
    additive = [Retry(delay=1.0, jitter=0.5).wait(2) for _ in range(200)]
    assert all(4.0 <= w <= 4.5 for w in additive) and len(set(additive)) > 100
    full = [Retry(delay=1.0, max_delay=3.0, jitter="full").wait(3) for _ in range(200)]
    assert all(0.0 <= w <= 3.0 for w in full) and min(full) < 0.5 and max(full) > 2.5
    assert Retry(delay=1.0, factor=10.0, jitter=0).wait(10_000) == 30.0  # no overflow
    assert Retry(delay=0, factor=math.inf, jitter=0).wait(3) == 0.0
    assert Retry(retry_on=KeyError).retry_on == (KeyError,)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"delay": -1}, ConfigurationError, "delay"),
        ({"delay": math.nan}, ConfigurationError, "delay"),
        ({"max_delay": "5"}, ConfigurationTypeError, "max_delay"),
        ({"factor": 0}, ConfigurationError, "factor"),
        ({"jitter": -0.1}, ConfigurationError, "jitter"),
        ({"jitter": "half"}, ConfigurationTypeError, "jitter"),
        ({"jitter": True}, ConfigurationTypeError, "jitter"),
        ({"retry_on": ValueError("x")}, ConfigurationTypeError, "retry_on"),
        ({"retry_on": (KeyError, 5)}, ConfigurationTypeError, "retry_on"),
    ],
)
def test_retry_refuses_bad_values(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        Retry(**kwargs)


def test_the_old_retry_names_are_gone() -> None:
    with pytest.raises(TypeError, match="backoff"):
        Retry(backoff=0.1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="max_backoff"):
        Retry(max_backoff=1.0)  # type: ignore[call-arg]


def test_retry_wait_adds_jitter_before_the_cap() -> None:
    # min(max_delay, delay * factor**n + U(0, jitter)), as mtaio.resources.Retry computes it.
    policy = Retry(delay=1.0, factor=2.0, max_delay=3.0, jitter=2.0)
    random.seed(11)
    waits = [policy.wait(n) for n in range(5)]
    draws = random.Random(11)
    expected = [min(3.0, base + draws.uniform(0, 2)) for base in (1, 2, 4, 8, 16)]
    assert waits == expected
    assert max(expected) == 3.0
