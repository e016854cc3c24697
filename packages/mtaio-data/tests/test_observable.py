from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from mtaio.data import Change, ChangeType, Observable, ObservableStats, ObservableValue
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError


async def test_sync_and_async_observers_in_order() -> None:
    obs = Observable[int]()
    got: list[str] = []

    @obs.on_change
    def sync(change: Change[int]) -> None:
        got.append(f"sync {change.value}")

    @obs.on_change
    async def async_(change: Change[int]) -> None:
        await asyncio.sleep(0)
        got.append(f"async {change.value}")

    await obs.notify(Change(ChangeType.ADD, 1))
    assert got == ["sync 1", "async 1"]
    assert obs.remove_observer(sync)
    assert not obs.remove_observer(sync)
    await obs.notify(Change(ChangeType.UPDATE, 2, 1, path="x"))
    assert got[-1] == "async 2"
    assert obs.observer_count == 1


async def test_failing_observer_does_not_stop_others(caplog: pytest.LogCaptureFixture) -> None:
    obs = Observable[int]()
    got: list[int | None] = []

    def bad(change: Change[int]) -> None:
        raise RuntimeError("observer bug")

    async def bad_async(change: Change[int]) -> None:
        raise RuntimeError("async observer bug")

    obs.add_observer(bad)
    obs.add_observer(bad_async)
    obs.add_observer(lambda c: got.append(c.value))
    with caplog.at_level(logging.ERROR, logger="mtaio.data"):
        await obs.notify(Change(ChangeType.ADD, 3))
    assert got == [3]
    assert obs.stats() == ObservableStats(observers=3, notifications=1, failures=2)
    assert dataclasses.asdict(obs.stats()) == {"observers": 3, "notifications": 1, "failures": 2}
    assert "observer bug" in caplog.text


async def test_once_runs_a_single_time() -> None:
    obs = Observable[str]()
    got: list[str | None] = []

    @obs.once
    def first(change: Change[str]) -> None:
        got.append(change.value)

    await obs.notify(Change(ChangeType.ADD, "a"))
    await obs.notify(Change(ChangeType.ADD, "b"))
    assert got == ["a"]
    assert obs.observer_count == 0


async def test_batch_operations_deliver_one_notification() -> None:
    obs = Observable[int]()
    got: list[Change[int]] = []
    obs.add_observer(got.append)
    async with obs.batch_operations():
        await obs.notify(Change(ChangeType.ADD, 1))
        async with obs.batch_operations():  # nested: still one delivery
            await obs.notify(Change(ChangeType.UPDATE, 2, 1))
        assert got == []
    assert len(got) == 1
    batch = got[0]
    assert batch.type is ChangeType.BATCH
    assert [c.value for c in batch.changes] == [1, 2]

    got.clear()
    async with obs.batch_operations():
        await obs.notify(Change(ChangeType.DELETE, None, 2))
    assert [c.type for c in got] == [ChangeType.DELETE]  # a single change is delivered as is
    assert got[0].changes == (got[0],)

    got.clear()
    async with obs.batch_operations():
        pass
    assert got == []

    async def failing_block() -> None:
        async with obs.batch_operations():
            await obs.notify(Change(ChangeType.ADD, 5))
            raise KeyError("x")

    with pytest.raises(KeyError):
        await failing_block()
    assert [c.value for c in got] == [5]  # delivered: the change did happen


async def test_subclass_without_super_init() -> None:
    class Model(Observable[int]):
        def __init__(self) -> None:
            self.value = 0

        async def set(self, value: int) -> None:
            old, self.value = self.value, value
            await self.notify(Change(ChangeType.UPDATE, value, old, path="value"))

    model = Model()
    got: list[tuple[int | None, int | None]] = []
    model.add_observer(lambda c: got.append((c.old_value, c.value)))
    await model.set(4)
    assert got == [(0, 4)]
    await Observable[int]().notify(Change(ChangeType.ADD, 1))  # no observers: a no-op


def test_bad_observer_rejected() -> None:
    with pytest.raises(ConfigurationTypeError, match="observer"):
        Observable[int]().add_observer(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="maxsize"):
        ObservableValue(0, maxsize=-1)


def test_change_fields() -> None:
    change = Change(ChangeType.UPDATE, 2, 1, path="a.b")
    assert (change.type, change.value, change.old_value, change.path) == (
        ChangeType.UPDATE,
        2,
        1,
        "a.b",
    )
    assert change.timestamp > 0


async def test_observable_value_set_and_iterate() -> None:
    counter = ObservableValue(0)
    assert repr(counter) == "ObservableValue(0)"
    seen: list[int | None] = []
    counter.add_observer(lambda c: seen.append(c.value))
    changes = counter.changes()
    await counter.set(1)
    await counter.set(1)  # equal: no change
    await counter.set(1, force=True)
    await counter.set(2)
    assert counter.value == 2
    assert seen == [1, 1, 2]
    got = [await changes.__anext__() for _ in range(3)]
    assert [(c.old_value, c.value) for c in got] == [(0, 1), (1, 1), (1, 2)]
    await changes.aclose()
    assert changes.closed
    with pytest.raises(StopAsyncIteration):
        await changes.__anext__()
    await changes.aclose()  # idempotent


async def test_observable_value_async_for_and_bounded_queue() -> None:
    value = ObservableValue("a", maxsize=2)

    async def reader() -> list[str | None]:
        out: list[str | None] = []
        async with value.changes() as sub:
            async for change in sub:
                out.append(change.value)
                if change.value == "d":
                    return out
        return out  # pragma: no cover

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    for v in "bcd":
        await value.set(v)  # the queue holds 2: "b" is dropped, "c" and "d" kept
    assert await task == ["c", "d"]
    it = aiter(value)
    await value.set("e")
    assert (await anext(it)).value == "e"
