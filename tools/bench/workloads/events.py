"""Workloads "events" (emit throughput) and "channel" (pub/sub throughput).

events: 200k emits of one name with 1 and with 10 async handlers, and with 100 other names
registered, against pyee's AsyncIOEventEmitter (its emit schedules a task per handler: the
round is counted until every handler ran; it emits a tenth as many), blinker's
``send_async`` and a hand-written dict-of-lists emitter that awaits each async handler (the
raw baseline).

channel: 100k publishes to 10 subscribers, (a) consumed concurrently with the ``block``
policy against ten ``asyncio.Queue``s, (b) published with nobody reading, bounded queues
dropping the oldest, against ten ``deque(maxlen=...)``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from mtaio.events import Channel, Event, EventEmitter

from .._runner import Case, Options, Scenario, workload

NAME = "order.created"


def _others(k: int) -> list[str]:
    return [f"other.name.{i}" for i in range(k)]


def _emit_scenario(title: str, n: int, handlers: int, others: int) -> Scenario:
    counter = [0]
    expected = n * handlers

    # -- raw: a dict of lists, each async handler awaited in turn
    async def raw_handler(data: Any) -> None:
        counter[0] += 1

    registry: dict[str, list[Callable[[Any], Awaitable[None]]]] = {
        name: [raw_handler] for name in _others(others)
    }
    registry[NAME] = [raw_handler] * handlers

    async def raw_emit(name: str, data: Any) -> None:
        for handler in registry.get(name, ()):
            await handler(data)

    async def run_raw() -> None:
        counter[0] = 0
        for i in range(n):
            await raw_emit(NAME, i)
        assert counter[0] == expected

    # -- mtaio
    emitter = EventEmitter()

    async def mtaio_handler(event: Event[Any]) -> None:
        counter[0] += 1

    for name in _others(others):
        emitter.on(name, mtaio_handler)
    for _ in range(handlers):
        emitter.on(NAME, mtaio_handler)

    async def run_mtaio() -> None:
        counter[0] = 0
        emit = emitter.emit
        for i in range(n):
            await emit(NAME, i)
        assert counter[0] == expected

    # -- reference (not the baseline): the same hand-written emitter, but its handlers get an
    # event object with name and data, as every mtaio handler does. Shows the floor that
    # allocating one event per emit sets.
    class RawEvent:
        __slots__ = ("data", "name")

        def __init__(self, name: str, data: Any) -> None:
            self.name = name
            self.data = data

    async def raw_emit_event(name: str, data: Any) -> None:
        handlers = registry.get(name)
        if handlers:
            event = RawEvent(name, data)
            for handler in handlers:
                await handler(event)

    async def run_raw_event() -> None:
        counter[0] = 0
        for i in range(n):
            await raw_emit_event(NAME, i)
        assert counter[0] == expected

    cases = [
        Case("raw dict-of-lists", run_raw, n, raw=True),
        Case("mtaio EventEmitter", run_mtaio, n),
        Case("ref: raw + event object", run_raw_event, n),
    ]

    try:
        from pyee.asyncio import AsyncIOEventEmitter
    except ImportError:  # pragma: no cover - peers are optional
        pass
    else:
        pyee_emitter = AsyncIOEventEmitter()

        async def pyee_handler(data: Any) -> None:
            counter[0] += 1

        for name in _others(others):
            pyee_emitter.on(name, pyee_handler)
        for _ in range(handlers):
            # pyee dedups one function per name; distinct wrappers keep 10 handlers
            async def handler(data: Any) -> None:
                counter[0] += 1

            pyee_emitter.on(NAME, handler)

        # pyee runs 20-100x slower than the others: a tenth of the emits measures its rate as
        # well and keeps a many-round run short.
        pyee_n = max(1, n // 10)

        async def run_pyee() -> None:
            counter[0] = 0
            emit = pyee_emitter.emit
            for i in range(pyee_n):
                emit(NAME, i)
                if i % 1000 == 999:  # its handlers run as tasks: let them run, bound memory
                    while counter[0] < (i + 1) * handlers:  # noqa: ASYNC110 - polling is the measure
                        await asyncio.sleep(0)
            while counter[0] < pyee_n * handlers:  # noqa: ASYNC110 - polling is the measure
                await asyncio.sleep(0)

        cases.append(Case("pyee AsyncIOEventEmitter", run_pyee, pyee_n))

    try:
        from blinker import Namespace
    except ImportError:  # pragma: no cover
        pass
    else:
        ns = Namespace()
        for name in _others(others):
            ns.signal(name).connect(_blinker_receiver(counter), weak=False)
        signal = ns.signal(NAME)
        for _ in range(handlers):
            signal.connect(_blinker_receiver(counter), weak=False)

        async def run_blinker() -> None:
            counter[0] = 0
            send = signal.send_async
            for i in range(n):
                await send(None, data=i)
            assert counter[0] == expected

        cases.append(Case("blinker send_async", run_blinker, n))

    return Scenario(title, cases)


def _blinker_receiver(counter: list[int]) -> Callable[..., Awaitable[None]]:
    async def receiver(sender: Any, **kwargs: Any) -> None:
        counter[0] += 1

    return receiver


@workload("events")
def events(options: Options) -> list[Scenario]:
    n = options.scale(200_000)
    return [
        _emit_scenario("emit, 1 async handler", n, 1, 0),
        _emit_scenario("emit, 10 async handlers", n, 10, 0),
        _emit_scenario("emit, 1 handler, 100 other names", n, 1, 100),
    ]


def _consume_scenario(n: int, subscribers: int) -> Scenario:
    maxsize = 1000

    async def run_raw() -> None:
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue(maxsize) for _ in range(subscribers)]

        async def consume(q: asyncio.Queue[Any]) -> int:
            got = 0
            while True:
                item = await q.get()
                if item is None:
                    return got
                got += 1

        tasks = [asyncio.create_task(consume(q)) for q in queues]
        for i in range(n):
            for q in queues:
                await q.put(("topic", i))
        for q in queues:
            await q.put(None)
        assert sum(await asyncio.gather(*tasks)) == n * subscribers

    async def run_mtaio() -> None:
        channel: Channel[int] = Channel("bench")
        subs = [
            await channel.subscribe(maxsize=maxsize, overflow="block") for _ in range(subscribers)
        ]

        async def consume(sub: Any) -> int:
            got = 0
            async for _ in sub:
                got += 1
            return got

        tasks = [asyncio.create_task(consume(s)) for s in subs]
        publish = channel.publish
        for i in range(n):
            await publish(i, "topic")
        await channel.close()
        assert sum(await asyncio.gather(*tasks)) == n * subscribers

    return Scenario(
        f"publish+consume, {subscribers} subscribers, block",
        [
            Case("raw asyncio.Queue per subscriber", run_raw, n, raw=True),
            Case("mtaio Channel", run_mtaio, n),
        ],
    )


def _drop_scenario(n: int, subscribers: int) -> Scenario:
    maxsize = 1000

    async def run_raw() -> None:
        queues: list[deque[Any]] = [deque(maxlen=maxsize) for _ in range(subscribers)]
        for i in range(n):
            for q in queues:
                q.append(("topic", i))
        assert all(len(q) == maxsize for q in queues)

    async def run_mtaio() -> None:
        channel: Channel[int] = Channel("bench")
        subs = [
            await channel.subscribe(["topic"], maxsize=maxsize, overflow="drop_oldest")
            for _ in range(subscribers)
        ]
        publish = channel.publish
        for i in range(n):
            await publish(i, "topic")
        assert all(s.qsize() == maxsize for s in subs)
        await channel.close()

    return Scenario(
        f"publish only, {subscribers} subscribers, drop_oldest",
        [
            Case("raw deque(maxlen) per subscriber", run_raw, n, raw=True),
            Case("mtaio Channel", run_mtaio, n),
        ],
    )


@workload("channel")
def channel(options: Options) -> list[Scenario]:
    n = options.scale(100_000)
    return [_consume_scenario(n, 10), _drop_scenario(n, 10)]
