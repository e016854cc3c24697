"""Issue 15's rules on the emitter: one error group, O(1) off(), a quiet package logger."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mtaio.events import Event, EventEmitter
from mtaio.exceptions import EventHandlerError, MTAIOErrorGroup


class CountingHandler:
    """A hashable handler that counts how often it is compared for equality."""

    comparisons = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, event: Event[Any]) -> None:
        pass

    def __hash__(self) -> int:
        return hash(self.n)

    def __eq__(self, other: object) -> bool:
        CountingHandler.comparisons += 1
        return isinstance(other, CountingHandler) and other.n == self.n


async def test_several_failures_are_one_exception_group_that_except_star_splits() -> None:
    emitter = EventEmitter()

    async def bad_value(event: Event[Any]) -> None:
        raise ValueError("v")

    def bad_key(event: Event[Any]) -> None:
        raise KeyError("k")

    emitter.on("e", bad_value)
    emitter.on("e", bad_key)
    caught: list[type[BaseException]] = []
    try:
        await emitter.emit("e")
    except* ValueError as group:
        assert isinstance(group, EventHandlerError)  # split keeps the class and attributes
        assert group.event_name == "e"
        caught += [type(e) for e in group.exceptions]
    except* KeyError as group:
        caught += [type(e) for e in group.exceptions]
    assert caught == [ValueError, KeyError]


@pytest.mark.parametrize("handlers", [1, 3], ids=["single-handler path", "fast table"])
async def test_every_emit_path_raises_the_group(handlers: int) -> None:
    emitter = EventEmitter()

    async def bad(event: Event[Any]) -> None:
        raise ValueError(event.data)

    for _ in range(handlers):
        emitter.on("e", bad)
    for _ in range(2):  # the first emit builds the plan, the second takes the fast path
        with pytest.raises(EventHandlerError) as info:
            await emitter.emit("e", 7)
        assert isinstance(info.value, MTAIOErrorGroup)
        assert [str(e) for e in info.value.exceptions] == ["7"] * handlers


async def test_off_finds_the_handler_without_comparing_it_to_the_others() -> None:
    emitter = EventEmitter()
    handlers = [CountingHandler(i) for i in range(20_000)]
    for handler in handlers:
        emitter.on("e", handler)
    emitter.on("e", handlers[5])  # registered twice: off() removes both
    CountingHandler.comparisons = 0
    assert emitter.off("e", handlers[5]) is True
    assert emitter.off("e", handlers[5]) is False
    for handler in handlers[6:]:
        assert emitter.off("e", handler)
    # A scan would compare each removal with the thousands left; the index compares ~once.
    assert CountingHandler.comparisons <= 2 * len(handlers)
    assert emitter.listeners("e") == handlers[:5]
    assert emitter.listener_count() == 5


async def test_off_of_a_bound_method_and_of_an_unhashable_callable() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    class Owner:
        def handle(self, event: Event[Any]) -> None:
            seen.append("method")

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, event: Event[Any]) -> None:
            seen.append("unhashable")

    owner, odd = Owner(), Unhashable()
    emitter.on("e", owner.handle)
    emitter.on("e", odd)
    await emitter.emit("e")
    assert seen == ["method", "unhashable"]
    assert emitter.off("e", owner.handle)  # a new bound-method object, equal to the first
    assert emitter.off("e", odd)
    assert not emitter.off("e", odd)
    assert emitter.event_names() == []


async def test_many_once_handlers_unregister_in_constant_time_each() -> None:
    emitter = EventEmitter()
    handlers = [CountingHandler(i) for i in range(5_000)]
    for handler in handlers:
        emitter.once("e", handler)
    CountingHandler.comparisons = 0
    await emitter.emit("e")
    assert emitter.listener_count() == 0
    assert CountingHandler.comparisons <= 2 * len(handlers)


async def test_emit_refuses_patterns_even_after_listener_count_built_their_plan() -> None:
    emitter = EventEmitter()

    async def handler(event: Event[Any]) -> None:
        pass

    emitter.on("user.*", handler)
    assert emitter.listener_count("user.*") == 1  # a plan for the pattern name is cached
    for _ in range(2):
        with pytest.raises(Exception, match="pattern"):
            await emitter.emit("user.*")


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("mtaio.events").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
