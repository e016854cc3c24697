"""Every public constructor and method refuses bad values at the call, naming the argument.

Issue 15's list of hostile values goes to each parameter; the values a parameter accepts are
listed beside it. A refused value must raise ConfigurationError/ConfigurationTypeError whose
message names the argument, and the object must still work afterwards.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.events import Channel, Event, EventEmitter, Message, Subscriber
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

BAD_VALUES: tuple[object, ...] = (
    -1, 0, math.nan, math.inf, -math.inf, "5", True, 1.5, 10**12, None,
)  # fmt: skip


def _is(*accepted: object) -> Callable[[object], bool]:
    def accepts(value: object) -> bool:
        return any(
            value is a or (type(value) is type(a) and value == a and not isinstance(a, float))
            for a in accepted
        )

    return accepts


NEVER = _is()
NAME_OR_NONE = _is("5", None)  # a str is a name; None where the parameter is optional
NAME = _is("5")
POSITIVE_TIMEOUT = _is(math.inf, 1.5, 10**12, None)  # None: no timeout, inf: the same
POSITIVE_INT = _is(10**12)
PRIORITY = _is(-1, 0)
DECORATOR = _is(None)  # a handler omitted: the decorator form  # 0 is LOWEST, -1 is MONITOR


@dataclass
class World:
    emitter: EventEmitter
    channel: Channel[Any]
    subscriber: Subscriber[Any]
    seen: list[Any]

    async def still_usable(self) -> None:
        await self.emitter.emit("probe", 1)
        assert self.seen[-1] == 1
        assert await self.channel.publish("m", topic="t") == 1
        assert (await self.subscriber.receive(timeout=1)).data == "m"


async def _world() -> World:
    emitter = EventEmitter()
    seen: list[Any] = []
    emitter.on("probe", lambda event: seen.append(event.data))
    channel: Channel[Any] = Channel()
    subscriber = await channel.subscribe("t")
    return World(emitter, channel, subscriber, seen)


def _h(event: Event[Any]) -> None:
    pass


def _hb(events: list[Event[Any]]) -> None:
    pass


Call = Callable[[World, Any], Any]
CASES: list[tuple[str, str, Call, Callable[[object], bool]]] = [
    ("EventEmitter()", "error_policy", lambda w, v: EventEmitter(error_policy=v), NEVER),
    ("EventEmitter()", "name", lambda w, v: EventEmitter(name=v), NAME_OR_NONE),
    ("on", "name", lambda w, v: w.emitter.on(v, _h), NAME),
    ("on", "handler", lambda w, v: w.emitter.on("e", v), DECORATOR),
    ("on", "priority", lambda w, v: w.emitter.on("e", _h, priority=v), PRIORITY),
    ("on", "times", lambda w, v: w.emitter.on("e", _h, times=v), _is(10**12, None)),
    ("once", "name", lambda w, v: w.emitter.once(v, _h), NAME),
    ("once", "handler", lambda w, v: w.emitter.once("e", v), DECORATOR),
    ("once", "priority", lambda w, v: w.emitter.once("e", _h, priority=v), PRIORITY),
    ("many", "times", lambda w, v: w.emitter.many("e", v, _h), POSITIVE_INT),
    ("many", "handler", lambda w, v: w.emitter.many("e", 2, v), DECORATOR),
    ("on_batch", "name", lambda w, v: w.emitter.on_batch(v, _hb), NAME),
    ("on_batch", "handler", lambda w, v: w.emitter.on_batch("e", v), DECORATOR),
    ("on_batch", "priority", lambda w, v: w.emitter.on_batch("e", _hb, priority=v), PRIORITY),
    ("off", "name", lambda w, v: w.emitter.off(v, _h), NAME),
    ("off", "handler", lambda w, v: w.emitter.off("e", v), NEVER),
    ("remove_all_listeners", "name", lambda w, v: w.emitter.remove_all_listeners(v), NAME_OR_NONE),
    ("listeners", "name", lambda w, v: w.emitter.listeners(v), NAME),
    ("listener_count", "name", lambda w, v: w.emitter.listener_count(v), NAME_OR_NONE),
    ("emit", "name", lambda w, v: w.emitter.emit(v), NAME),
    ("emit", "metadata", lambda w, v: w.emitter.emit("e", 1, metadata=v), _is(None)),
    ("emit_collect", "name", lambda w, v: w.emitter.emit_collect(v), NAME),
    ("emit_collect", "metadata", lambda w, v: w.emitter.emit_collect("e", metadata=v), _is(None)),
    ("wait_for", "name", lambda w, v: w.emitter.wait_for(v, timeout=0.001), NAME),
    ("wait_for", "timeout", lambda w, v: w.emitter.wait_for("e", timeout=v), POSITIVE_TIMEOUT),
    ("wait_for", "predicate", lambda w, v: w.emitter.wait_for("e", predicate=v), _is(None)),
    ("pipe", "other", lambda w, v: w.emitter.pipe(v), NEVER),
    ("unpipe", "other", lambda w, v: w.emitter.unpipe(v), _is(None)),
    ("filter", "predicate", lambda w, v: w.emitter.filter(v), NEVER),
    ("map", "transform", lambda w, v: w.emitter.map(v), NEVER),
    ("Event()", "name", lambda w, v: Event(v, 1), NAME),
    ("Event()", "metadata", lambda w, v: Event("e", 1, v), _is(None)),
    ("Channel()", "name", lambda w, v: Channel(v), NAME),
    ("subscribe", "topics", lambda w, v: w.channel.subscribe(v), NAME_OR_NONE),
    ("subscribe", "maxsize", lambda w, v: w.channel.subscribe("x", maxsize=v), POSITIVE_INT),
    ("subscribe", "overflow", lambda w, v: w.channel.subscribe("x", overflow=v), NEVER),
    ("publish", "topic", lambda w, v: w.channel.publish(1, topic=v), NAME_OR_NONE),
    ("publish", "metadata", lambda w, v: w.channel.publish(1, "t", metadata=v), _is(None)),
    ("receive", "timeout", lambda w, v: w.subscriber.receive(timeout=v), POSITIVE_TIMEOUT),
    ("Message()", "topic", lambda w, v: Message(1, v), NAME_OR_NONE),
    ("Message()", "metadata", lambda w, v: Message(1, "t", v), _is(None)),
]


async def _call(world: World, call: Call, value: object) -> None:
    result = call(world, value)
    if isinstance(result, Awaitable):
        await result


@pytest.mark.parametrize(
    ("api", "argument", "call", "accepts"),
    CASES,
    ids=[f"{api}-{argument}" for api, argument, _, _ in CASES],
)
@settings(max_examples=40, deadline=None)
@given(value=st.sampled_from(BAD_VALUES))
def test_bad_values_are_refused_naming_the_argument(
    api: str, argument: str, call: Call, accepts: Callable[[object], bool], value: object
) -> None:
    async def run() -> None:
        world = await _world()
        if accepts(value):
            return  # a legal value: covered by the behaviour tests
        with pytest.raises((ConfigurationError, ConfigurationTypeError)) as info:
            await _call(world, call, value)
        assert argument in str(info.value), f"{api}({argument}={value!r}): {info.value}"
        await world.still_usable()
        await world.channel.close()

    asyncio.run(run())


def test_the_accepting_predicates_pick_what_they_say() -> None:
    assert NAME("5") and not NAME(None) and not NAME(5)
    assert PRIORITY(-1) and PRIORITY(0) and not PRIORITY(True) and not PRIORITY(1.5)
    assert POSITIVE_TIMEOUT(math.inf) and not POSITIVE_TIMEOUT(math.nan)
    assert not POSITIVE_INT(True) and POSITIVE_INT(10**12)
