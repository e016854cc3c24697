"""Memory stays flat over long runs: nothing per emit or per subscription is retained."""

import gc
import os
import sys
from typing import Any

import pytest

from mtaio.events import Channel, Event, EventEmitter

# What is checked is that memory does not grow with the count: 200k emits by default (a
# retained object per emit would be 100x the bound), MTAIO_EVENTS_EMITS=1000000 for the
# million. Under a tracer (coverage) every line costs ~10x: at most 100k there.
MILLION = int(os.environ.get("MTAIO_EVENTS_EMITS", "200000"))
if sys.gettrace() is not None:
    MILLION = min(MILLION, 100_000)


def blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


@pytest.mark.slow
async def test_a_million_emits_with_once_handlers_stay_flat() -> None:
    emitter = EventEmitter()
    hits = [0]

    def handler(event: Event[Any]) -> None:
        hits[0] += 1

    emitter.on("steady", handler)

    async def cycle(n: int) -> None:
        once = emitter.once
        emit = emitter.emit
        for i in range(n):
            once("tick", handler)
            await emit("tick", i)
            await emit("steady", i)
            await emit("steady", i)
            await emit("steady", i)

    await cycle(10_000)  # warm up caches and free lists
    before = blocks()
    await cycle(MILLION // 4)  # four emits per iteration: a million emits
    growth = blocks() - before
    assert hits[0] == (10_000 + MILLION // 4) * 4
    assert emitter.listener_count() == 1
    assert growth < 2_000, growth


@pytest.mark.slow
async def test_subscribe_unsubscribe_cycles_stay_flat() -> None:
    channel = Channel[int]("mem")
    keeper = await channel.subscribe(maxsize=8)

    async def cycle(n: int) -> None:
        for i in range(n):
            sub = await channel.subscribe(["a.*"], maxsize=4)
            await channel.publish(i, "a.b")
            await sub.receive()
            sub.unsubscribe()

    await cycle(5_000)
    before = blocks()
    await cycle(MILLION // 10)
    growth = blocks() - before
    assert channel.subscriber_count == 1
    assert keeper.qsize() == 8
    assert growth < 2_000, growth
