"""Type-level checks of the public API (mypy checks this file; pytest does not collect it)."""

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from mtaio.events import Channel, Event, EventEmitter, EventPriority, Message, Subscriber
from mtaio.typing import AsyncCloseable


async def handler(event: Event[dict[str, Any]]) -> None: ...


def sync_handler(event: Event[Any]) -> int:
    return 1


async def check() -> None:
    emitter = EventEmitter()
    same: Callable[[Event[dict[str, Any]]], Coroutine[Any, Any, None]] = emitter.on("a", handler)
    assert same is handler
    registered = emitter.on("a", sync_handler, priority=EventPriority.HIGH)
    assert_type(registered(Event("a", 1)), int)

    @emitter.on("b")
    async def decorated(event: Event[Any]) -> str:
        return "x"

    assert_type(await decorated(Event("b", None)), str)
    event = Event("n", 3)
    assert_type(event, Event[int])
    assert_type(event.data, int)
    assert_type(await emitter.emit_collect("n", 1), list[Any])
    assert_type(await emitter.wait_for("n"), Event[Any])
    assert_type(emitter.filter(lambda e: e.data > 1), EventEmitter)

    channel = Channel[str]("c")
    sub = await channel.subscribe(["user.*"], maxsize=10, overflow="drop_newest")
    assert_type(sub, Subscriber[str])
    message = await sub.receive()
    assert_type(message, Message[str])
    assert_type(message.data, str)
    async for item in sub:
        assert_type(item, Message[str])
    assert_type(await channel.publish("x", topic="user.a"), int)
    closeables: list[AsyncCloseable] = [channel, sub]
    for resource in closeables:
        await resource.close()
