"""Type-level checks of the public API (mypy checks this file; pytest does not collect it)."""

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from mtaio.events import (
    Channel,
    Event,
    EventEmitter,
    EventPriority,
    JsonSerializer,
    Message,
    RedisPubSubTransport,
    RedisStreamsTransport,
    Subscriber,
)
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


async def check_handler_types() -> None:
    """A handler must accept an Event: mypy refuses one annotated with another type."""
    emitter = EventEmitter()

    def takes_int(value: int) -> None: ...

    def takes_two(event: Event[Any], extra: int) -> None: ...

    emitter.on("n", takes_int)  # type: ignore[type-var]
    emitter.on("n")(takes_int)  # type: ignore[type-var]
    emitter.on("n", takes_two)  # type: ignore[type-var]
    emitter.once("n", takes_int)  # type: ignore[type-var]
    emitter.many("n", 2, takes_int)  # type: ignore[type-var]

    @emitter.on("n")  # type: ignore[type-var]
    async def decorated_bad(value: str) -> None: ...

    @emitter.on("n")
    def untyped(event):  # type: ignore[no-untyped-def]
        return None

    emitter.on("n", lambda event: event.data)

    def takes_batch(events: list[Event[Any]]) -> None: ...

    emitter.on_batch("n", takes_batch)
    emitter.on_batch("n", takes_int)  # type: ignore[type-var]
    await emitter.emit("n", 1, {"k": 1})  # type: ignore[call-arg]  # metadata is keyword-only
    await emitter.emit("n", 1, metadata={"k": 1})


async def check_typed_transport_channel(transport: RedisStreamsTransport) -> None:
    """A channel's serializer must produce and accept the channel's message type."""
    orders = JsonSerializer[int](encode=lambda n: n, decode=int)
    channel = Channel[int]("orders", transport=transport, serializer=orders)
    sub = await channel.subscribe("created", group="billing", auto_ack=False)
    message = await sub.receive()
    assert_type(message.data, int)
    assert_type(message.id, str | None)
    assert_type(message.deliveries, int)
    await message.ack()
    await channel.publish("one", topic="created")  # type: ignore[arg-type]
    Channel[int]("x", transport=transport, serializer=JsonSerializer[str]())  # type: ignore[arg-type]
    Channel[int]("y", transport=RedisPubSubTransport("redis://localhost"))
