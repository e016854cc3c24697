import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.core import (
    AsyncQueue,
    LIFOQueue,
    PriorityQueue,
    QueueClosedError,
    QueueEmptyError,
    QueueFullError,
    QueueStats,
)
from mtaio.exceptions import ConfigurationError, ResourceLockError

# Virtual time: the sleeps that let work progress cannot race a loaded machine.
pytestmark = pytest.mark.looptime

QUEUES = [AsyncQueue, LIFOQueue, PriorityQueue]


async def test_fifo_lifo_and_priority_order() -> None:
    fifo = AsyncQueue[int]()
    lifo = LIFOQueue[int]()
    for i in range(3):
        await fifo.put(i)
        lifo.put_nowait(i)
    assert [await fifo.get() for _ in range(3)] == [0, 1, 2]
    assert [lifo.get_nowait() for _ in range(3)] == [2, 1, 0]

    prio = PriorityQueue[object]()
    unorderable = [object(), object(), object()]
    await prio.put(unorderable[0], priority=2)
    prio.put_nowait(unorderable[1], priority=1)
    await prio.put(unorderable[2], priority=2)
    prio.put_nowait("first", priority=-5)
    got = [await prio.get() for _ in range(4)]
    assert got == ["first", unorderable[1], unorderable[0], unorderable[2]]


@pytest.mark.parametrize("cls", QUEUES)
async def test_nowait_errors_and_sizes(cls: Any) -> None:
    queue = cls(maxsize=1)
    assert queue.empty() and not queue.full() and queue.qsize() == 0 and queue.maxsize == 1
    with pytest.raises(QueueEmptyError):
        queue.get_nowait()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait("a")
    assert queue.full() and len(queue) == 1
    with pytest.raises(QueueFullError):
        queue.put_nowait("b")
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait("b")
    assert "size=1" in repr(queue)
    assert queue.stats() == QueueStats(size=1, maxsize=1, getters=0, putters=0, unfinished=1)


@pytest.mark.parametrize("cls", QUEUES)
def test_bad_maxsize(cls: Any) -> None:
    with pytest.raises(ConfigurationError, match="maxsize"):
        cls(maxsize=-1)
    with pytest.raises(ConfigurationError, match="maxsize"):
        cls(maxsize=1.5)


@pytest.mark.parametrize("cls", QUEUES)
async def test_a_full_queue_blocks_the_putter_until_there_is_room(cls: Any) -> None:
    queue = cls(maxsize=1)
    await queue.put(1)
    putter = asyncio.ensure_future(queue.put(2))
    await asyncio.sleep(0.01)
    assert not putter.done()
    assert queue.stats().putters == 1
    assert await queue.get() == 1
    # The freed room is reserved for the waiting putter: nobody can barge in before it runs,
    # so it never has to block a second time.
    with pytest.raises(QueueFullError):
        queue.put_nowait(3)
    await putter
    assert queue.get_nowait() == 2


@pytest.mark.parametrize("cls", QUEUES)
async def test_getters_are_served_in_arrival_order(cls: Any) -> None:
    queue = cls()
    getters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    assert queue.stats().getters == 3
    for i in range(3):
        queue.put_nowait(i)
    with pytest.raises(QueueEmptyError):
        queue.get_nowait()  # every item is promised to a waiting getter
    assert queue.qsize() == 3
    results = [await g for g in getters]
    assert sorted(results) == [0, 1, 2]
    if cls is AsyncQueue:
        assert results == [0, 1, 2]


@pytest.mark.parametrize("cls", QUEUES)
async def test_close_wakes_every_waiter_with_a_clear_error(cls: Any) -> None:
    empty = cls()
    getters = [asyncio.ensure_future(empty.get()) for _ in range(2)]
    full = cls(maxsize=1)
    full.put_nowait("kept")
    putter = asyncio.ensure_future(full.put("refused"))
    await asyncio.sleep(0)
    empty.close()
    full.close()
    empty.close()  # idempotent
    assert empty.closed
    for task in [*getters, putter]:
        with pytest.raises(QueueClosedError, match="closed"):
            await task
    with pytest.raises(QueueClosedError):
        await full.put("late")
    with pytest.raises(QueueClosedError):
        full.put_nowait("late")
    assert await full.get() == "kept"  # what was put before close is still delivered
    with pytest.raises(QueueClosedError):
        full.get_nowait()
    with pytest.raises(QueueClosedError):
        await full.get()
    assert "closed" in repr(full)


async def test_a_putter_granted_room_then_closed_is_refused() -> None:
    queue = AsyncQueue[int](maxsize=1)
    queue.put_nowait(1)
    putter = asyncio.ensure_future(queue.put(2))
    await asyncio.sleep(0)
    queue.get_nowait()  # grants the room to the putter...
    queue.close()  # ...but the queue closes before it runs
    with pytest.raises(QueueClosedError):
        await putter
    assert queue.empty()


@pytest.mark.parametrize("cls", QUEUES)
async def test_async_for_until_closed(cls: Any) -> None:
    queue = cls()

    async def produce() -> None:
        for i in range(5):
            await queue.put(i)
            await asyncio.sleep(0)
        queue.close()

    producer = asyncio.ensure_future(produce())
    assert sorted([item async for item in queue]) == [0, 1, 2, 3, 4]
    await producer


@pytest.mark.parametrize("cls", QUEUES)
async def test_task_done_and_join(cls: Any) -> None:
    queue = cls()
    await queue.join()  # nothing put: returns at once
    for i in range(3):
        queue.put_nowait(i)
    joined = asyncio.ensure_future(queue.join())
    for _ in range(3):
        await queue.get()
        await asyncio.sleep(0)
        assert not joined.done()
        queue.task_done()
    await joined
    with pytest.raises(ResourceLockError, match="task_done"):
        queue.task_done()


async def test_a_getter_cancelled_after_its_grant_passes_the_item_on() -> None:
    queue = AsyncQueue[str]()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("item")  # granted to `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "item"


async def test_a_putter_cancelled_after_its_grant_passes_the_room_on() -> None:
    queue = AsyncQueue[str](maxsize=1)
    queue.put_nowait("a")
    first = asyncio.ensure_future(queue.put("b"))
    second = asyncio.ensure_future(queue.put("c"))
    await asyncio.sleep(0)
    assert queue.get_nowait() == "a"  # room granted to `first`...
    first.cancel()  # ...cancelled before it runs: its item is not put
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert queue.get_nowait() == "c"
    assert queue.empty()


async def test_many_timed_out_waiters_do_not_pile_up() -> None:
    queue = AsyncQueue[int]()
    for _ in range(300):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await queue.get()
    assert len(queue._getters) <= 200  # compacted, not 300 dead waiters
    queue.put_nowait(1)
    assert await queue.get() == 1


# -- randomized interleavings: a cancelled put or get loses nothing and duplicates nothing --

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 3)),
        st.tuples(st.just("get"), st.integers(0, 3)),
        st.tuples(st.just("cancel"), st.integers(0, 40)),
        st.tuples(st.just("tick"), st.integers(0, 3)),
        st.tuples(st.just("get_nowait"), st.integers(0, 0)),
    ),
    max_size=40,
)


async def interleave(cls: Any, maxsize: int, ops: list[tuple[str, int]]) -> None:
    queue = cls(maxsize=maxsize)
    tasks: list[tuple[str, object, asyncio.Future[Any]]] = []
    nowait_got: list[object] = []
    serial = 0
    for op, arg in ops:
        if op == "put":
            serial += 1
            item = (serial, arg)
            put = queue.put(item, priority=arg) if cls is PriorityQueue else queue.put(item)
            tasks.append(("put", item, asyncio.ensure_future(put)))
        elif op == "get":
            tasks.append(("get", None, asyncio.ensure_future(queue.get())))
        elif op == "cancel" and tasks:
            tasks[arg % len(tasks)][2].cancel()
        elif op == "get_nowait":
            with contextlib.suppress(QueueEmptyError):
                nowait_got.append(queue.get_nowait())
        for _ in range(arg if op == "tick" else 0):
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    for _, _, task in tasks:
        task.cancel()
    await asyncio.gather(*(t for _, _, t in tasks), return_exceptions=True)

    put_ok = [item for kind, item, t in tasks if kind == "put" and not t.cancelled()]
    got = [t.result() for kind, _, t in tasks if kind == "get" and not t.cancelled()]
    got += nowait_got
    rest = []
    while True:
        try:
            rest.append(queue.get_nowait())
        except QueueEmptyError:
            break
    assert Counter(put_ok) == Counter(got + rest)  # nothing lost, nothing duplicated
    assert len(set(got + rest)) == len(got + rest)
    assert queue.stats().getters == queue.stats().putters == 0
    assert queue._claimed == queue._reserved == 0


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(QUEUES), st.integers(0, 3), OPS)
def test_cancellation_never_loses_or_duplicates_items(
    cls: Any, maxsize: int, ops: list[tuple[str, int]]
) -> None:
    asyncio.run(interleave(cls, maxsize, ops))
