from typing import Any

import pytest

from mtaio.events import Event, EventEmitter
from mtaio.exceptions import EventHandlerError


def collect(emitter: EventEmitter, name: str = "*") -> list[Event[Any]]:
    seen: list[Event[Any]] = []
    emitter.on(name, seen.append)
    return seen


async def test_seed_graph_delivers_exactly_once() -> None:
    emitter = EventEmitter()
    filtered = emitter.filter(lambda event: event.data.get("priority") == "high")
    transformed = emitter.map(lambda event: Event(event.name, {**event.data, "processed": True}))
    emitter.pipe(filtered)
    filtered.pipe(transformed)
    got_filtered = collect(filtered)
    got_transformed = collect(transformed)
    high = {"priority": "high", "n": 1}
    low = {"priority": "low", "n": 2}
    await emitter.emit("task", high)
    await emitter.emit("task", low)
    assert [e.data for e in got_filtered] == [high]
    assert [e.data for e in got_transformed] == [
        {"priority": "high", "n": 1, "processed": True},
        {"priority": "low", "n": 2, "processed": True},
    ]
    assert high == {"priority": "high", "n": 1}
    assert low == {"priority": "low", "n": 2}


async def test_cycle_is_safe_and_each_emitter_sees_event_once() -> None:
    a, b, c = EventEmitter(), EventEmitter(), EventEmitter()
    a.pipe(b).pipe(c).pipe(a)
    a.pipe(c)
    c.pipe(b)
    seen = {name: collect(em) for name, em in (("a", a), ("b", b), ("c", c))}
    await b.emit("x", 1)
    assert {k: len(v) for k, v in seen.items()} == {"a": 1, "b": 1, "c": 1}
    assert a.stats().emitted == 1


async def test_pipe_to_self_and_twice_is_a_no_op() -> None:
    a, b = EventEmitter(), EventEmitter()
    a.pipe(a)
    assert a.pipe(b) is b
    a.pipe(b)
    got = collect(b)
    await a.emit("x")
    assert len(got) == 1
    assert "links=1" in repr(a)


async def test_unpipe() -> None:
    a, b, c = EventEmitter(), EventEmitter(), EventEmitter()
    a.pipe(b)
    a.pipe(c)
    got_b, got_c = collect(b), collect(c)
    a.unpipe(b)
    a.unpipe(b)
    await a.emit("x")
    assert (len(got_b), len(got_c)) == (0, 1)
    a.unpipe()
    await a.emit("x")
    assert (len(got_b), len(got_c)) == (0, 1)


async def test_map_never_mutates_original_and_wraps_plain_values() -> None:
    source = EventEmitter()
    original: list[Event[Any]] = collect(source)
    doubled = source.map(lambda e: e.data * 2)
    got = collect(doubled)
    await source.emit("n", 21, metadata={"m": 1})
    assert [e.data for e in got] == [42]
    assert got[0].name == "n"
    assert got[0].metadata == {"m": 1}
    assert original[0].data == 21


async def test_async_operators() -> None:
    source = EventEmitter()

    async def is_even(event: Event[int]) -> bool:
        return event.data % 2 == 0

    async def square(event: Event[int]) -> Event[int]:
        return Event(event.name, event.data**2)

    squares = source.filter(is_even).map(square)
    got = collect(squares)
    for i in range(5):
        await source.emit("n", i)
    assert [e.data for e in got] == [0, 4, 16]


async def test_filter_rejection_does_not_block_other_paths() -> None:
    # a -> f (rejects raw) and a -> m -> f (mapped passes): f sees it once, via m
    a = EventEmitter()
    f = a.filter(lambda e: e.data.get("ok", False))
    m = a.map(lambda e: {**e.data, "ok": True})
    m.pipe(f)
    got = collect(f)
    await a.emit("x", {"ok": False})
    assert [e.data for e in got] == [{"ok": True}]


async def test_stop_propagation_does_not_silence_links() -> None:
    a, b = EventEmitter(), EventEmitter()
    a.on("x", lambda e: e.stop_propagation())
    a.pipe(b)
    got = collect(b)
    await a.emit("x")
    assert len(got) == 1
    assert got[0].propagate is True


async def test_downstream_failures_are_raised_at_the_source() -> None:
    a = EventEmitter()
    b = a.filter(lambda e: 1 / 0)
    c = a.map(lambda e: e)
    c.on("x", lambda e: (_ for _ in ()).throw(ValueError("in c")))
    got = collect(b)
    with pytest.raises(EventHandlerError) as info:
        await a.emit("x")
    assert [type(e) for e in info.value.errors] == [ZeroDivisionError, ValueError]
    assert got == []
    assert b.stats().failures == 1


async def test_emit_collect_includes_linked_results() -> None:
    a, b = EventEmitter(), EventEmitter()
    a.pipe(b)
    a.on("x", lambda e: "a")
    b.on("x", lambda e: "b")
    assert await a.emit_collect("x") == ["a", "b"]


async def test_derived_emitter_direct_emit_is_not_filtered() -> None:
    a = EventEmitter()
    f = a.filter(lambda e: False)
    got = collect(f)
    await a.emit("x")
    await f.emit("y")
    assert [e.name for e in got] == ["y"]


async def test_once_handlers_across_links() -> None:
    a, b = EventEmitter(), EventEmitter()
    a.pipe(b)
    seen: list[str] = []
    a.once("x", lambda e: seen.append("a"))
    b.once("x", lambda e: seen.append("b"))
    await a.emit("x")
    await a.emit("x")
    assert seen == ["a", "b"]


async def test_fast_path_comes_back_after_unpipe_and_batch() -> None:
    a, b = EventEmitter(), EventEmitter()

    async def handler(event: Event[Any]) -> None:
        pass

    a.on("x", handler)
    await a.emit("x")
    assert "x" in a._fast1
    a.pipe(b)
    await a.emit("x")
    assert not a._fast1
    a.unpipe(b)
    await a.emit("x")
    assert "x" in a._fast1
    async with a.batch_operations():
        await a.emit("x")
        assert not a._fast1
    await a.emit("x")
    assert "x" in a._fast1
    assert a.stats().delivered == 5


async def test_reentrant_emit_with_links() -> None:
    a, b = EventEmitter(), EventEmitter()
    a.pipe(b)
    got = collect(b)

    @a.on("first")
    async def chain(event: Event[Any]) -> None:
        await a.emit("second", event.data + 1)

    await a.emit("first", 1)
    assert [(e.name, e.data) for e in got] == [("second", 2), ("first", 1)]
