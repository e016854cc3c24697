import asyncio
from typing import Any

import pytest

from mtaio.events import Event, EventEmitter, EventPriority
from mtaio.exceptions import ConfigurationError, EventHandlerError


async def test_batch_delivers_in_order_at_exit() -> None:
    emitter = EventEmitter()
    seen: list[Any] = []
    emitter.on("row", lambda e: seen.append(e.data))
    emitter.on("other", lambda e: seen.append(("other", e.data)))
    async with emitter.batch_operations():
        await emitter.emit("row", 1)
        await emitter.emit("other", 2)
        await emitter.emit("row", 3)
        assert seen == []
    assert seen == [1, ("other", 2), 3]


async def test_batch_handlers_get_all_events_in_one_call() -> None:
    emitter = EventEmitter()
    batches: list[list[Any]] = []
    patterned: list[list[str]] = []

    @emitter.on_batch("row")
    async def rows(events: list[Event[Any]]) -> None:
        batches.append([e.data for e in events])

    emitter.on_batch("*", lambda events: patterned.append([e.name for e in events]))
    async with emitter.batch_operations():
        for i in range(3):
            await emitter.emit("row", i)
        await emitter.emit("col", "c")
    assert batches == [[0, 1, 2]]
    assert patterned == [["row", "row", "row", "col"]]
    # outside a block a batch handler gets one-event lists
    await emitter.emit("row", 9)
    assert batches[-1] == [9]
    assert patterned[-1] == ["row"]


async def test_batch_handler_sync_outside_block() -> None:
    emitter = EventEmitter()
    got: list[int] = []
    emitter.on_batch("n", lambda events: got.extend(e.data for e in events))
    await emitter.emit("n", 1)
    assert got == [1]


async def test_nothing_delivered_when_block_raises() -> None:
    emitter = EventEmitter()
    seen: list[Any] = []
    emitter.on("row", seen.append)

    async def aborted() -> None:
        async with emitter.batch_operations():
            await emitter.emit("row", 1)
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        await aborted()
    assert seen == []
    await emitter.emit("row", 2)
    assert len(seen) == 1


async def test_nested_blocks_join_the_outer_one() -> None:
    emitter = EventEmitter()
    seen: list[Any] = []
    emitter.on("row", lambda e: seen.append(e.data))
    async with emitter.batch_operations():
        await emitter.emit("row", 1)
        async with emitter.batch_operations():
            await emitter.emit("row", 2)
        assert seen == []

        async def aborted() -> None:
            async with emitter.batch_operations():
                await emitter.emit("row", "dropped")
                raise ValueError("inner")

        with pytest.raises(ValueError, match="inner"):
            await aborted()
    assert seen == [1, 2]


async def test_batch_is_per_task() -> None:
    emitter = EventEmitter()
    seen: list[Any] = []
    emitter.on("row", lambda e: seen.append(e.data))
    async with emitter.batch_operations():
        await emitter.emit("row", "batched")
        await asyncio.create_task(emitter.emit("row", "other task"))
        assert seen == ["other task"]
    assert seen == ["other task", "batched"]


async def test_handlers_may_emit_while_the_batch_flushes() -> None:
    emitter = EventEmitter()
    seen: list[Any] = []

    @emitter.on("a")
    async def chain(event: Event[Any]) -> None:
        await emitter.emit("b", event.data)

    emitter.on("b", lambda e: seen.append(e.data))
    async with emitter.batch_operations():
        await emitter.emit("a", 1)
    assert seen == [1]


async def test_batch_failures_are_raised_at_exit() -> None:
    emitter = EventEmitter()
    emitter.on("row", lambda e: 1 / 0)
    emitter.on_batch("row", lambda events: 1 / 0, priority=EventPriority.LOW)
    with pytest.raises(EventHandlerError) as info:
        async with emitter.batch_operations():
            await emitter.emit("row", 1)
    assert len(info.value.errors) == 2


async def test_empty_block_and_reuse() -> None:
    emitter = EventEmitter()
    block = emitter.batch_operations()
    async with block:
        pass
    async with emitter.batch_operations():
        await emitter.emit_collect("x")  # collect delivers immediately
    assert emitter.stats().emitted == 1


async def test_block_cannot_be_entered_twice() -> None:
    emitter = EventEmitter()
    block = emitter.batch_operations()
    async with block:
        with pytest.raises(ConfigurationError):
            await block.__aenter__()


async def test_batch_with_links() -> None:
    a, b = EventEmitter(), EventEmitter()
    a.pipe(b)
    seen: list[Any] = []
    b.on("x", lambda e: seen.append(e.data))
    async with a.batch_operations():
        await a.emit("x", 1)
        assert seen == []
    assert seen == [1]
