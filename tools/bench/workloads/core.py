"""Workloads "concurrency" and "queue": mtaio.core against asyncio and aiometer.

concurrency: 20k trivial coroutines (each yields to the loop once and returns its input) with
at most 100 running at once. The raw baseline is the hand-written worker pool: 100 tasks
pulling from one shared iterator. Peers: ``asyncio.gather`` + ``Semaphore`` and
``TaskGroup`` + ``Semaphore`` (a task per item), ``aiometer.run_all`` (anyio, a task per item).
mtaio: ``TaskExecutor.gather(*coros, limit=100)``, ``TaskExecutor.map(fn, range(n),
limit=100)``, and ``TaskExecutor(limit=100).submit(coro)`` for each item, then awaiting
every handle in order.

queue: 100k put/get pairs through ``AsyncQueue``/``PriorityQueue`` against the asyncio
queues (the raw baseline of each scenario):

* fifo-same-task: ``await put(i); await get()`` in one task (the cost of an operation).
* fifo-producer-consumer: a producer and a consumer task through a queue of maxsize 100
  (the cost of blocking and waking).
* priority-batches: 1000 puts with random priorities, then 1000 gets, 100 times. asyncio's
  ``PriorityQueue`` is given ``(priority, i)`` tuples, mtaio's ``put(i, priority=p)``.
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import Any

from mtaio.core import AsyncQueue, PriorityQueue, TaskExecutor

from .._runner import Case, Options, Scenario, workload

LIMIT = 100


async def _work(i: int) -> int:
    await asyncio.sleep(0)
    return i


def _concurrency(n: int) -> Scenario:
    async def raw_pool() -> None:
        items = iter(range(n))
        results: list[int] = [0] * n

        async def worker() -> None:
            for i in items:
                results[i] = await _work(i)

        await asyncio.gather(*(worker() for _ in range(LIMIT)))

    async def gather_semaphore() -> None:
        sem = asyncio.Semaphore(LIMIT)

        async def guarded(i: int) -> int:
            async with sem:
                return await _work(i)

        await asyncio.gather(*(guarded(i) for i in range(n)))

    async def taskgroup_semaphore() -> None:
        sem = asyncio.Semaphore(LIMIT)

        async def guarded(i: int) -> int:
            async with sem:
                return await _work(i)

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(guarded(i)) for i in range(n)]
        [t.result() for t in tasks]

    async def mtaio_gather() -> None:
        async with TaskExecutor() as executor:
            await executor.gather(*(_work(i) for i in range(n)), limit=LIMIT)

    async def mtaio_map() -> None:
        async with TaskExecutor() as executor:
            await executor.map(_work, range(n), limit=LIMIT)

    async def mtaio_submit() -> None:
        async with TaskExecutor(limit=LIMIT) as executor:
            handles = [executor.submit(_work(i)) for i in range(n)]
            for handle in handles:
                await handle

    cases = [
        Case("raw worker pool", raw_pool, n, raw=True),
        Case("mtaio TaskExecutor.gather", mtaio_gather, n),
        Case("mtaio TaskExecutor.map", mtaio_map, n),
        Case("mtaio TaskExecutor.submit", mtaio_submit, n),
        Case("asyncio.gather + Semaphore", gather_semaphore, n),
        Case("asyncio.TaskGroup + Semaphore", taskgroup_semaphore, n),
    ]
    try:
        import aiometer
    except ImportError:  # pragma: no cover - a bench peer, installed with the bench group
        pass
    else:

        async def aiometer_run_all() -> None:
            await aiometer.run_all(
                [functools.partial(_work, i) for i in range(n)], max_at_once=LIMIT
            )

        cases.append(Case("aiometer.run_all", aiometer_run_all, n))
    return Scenario(f"{n} coroutines, limit {LIMIT}", cases)


@workload("concurrency")
def concurrency(options: Options) -> list[Scenario]:
    return [_concurrency(options.scale(20_000))]


def _same_task(n: int) -> Scenario:
    def case(name: str, make: Any, raw: bool = False) -> Case:
        async def run() -> None:
            queue = make()
            put, get = queue.put, queue.get
            for i in range(n):
                await put(i)
                await get()

        return Case(name, run, n, raw=raw)

    return Scenario(
        "fifo-same-task",
        [case("asyncio.Queue", asyncio.Queue, raw=True), case("mtaio AsyncQueue", AsyncQueue)],
        note="await put(i); await get() in one task",
    )


def _producer_consumer(n: int) -> Scenario:
    def case(name: str, make: Any, raw: bool = False) -> Case:
        async def run() -> None:
            queue = make(100)

            async def produce() -> None:
                put = queue.put
                for i in range(n):
                    await put(i)

            async def consume() -> None:
                get = queue.get
                for _ in range(n):
                    await get()

            await asyncio.gather(produce(), consume())

        return Case(name, run, n, raw=raw)

    return Scenario(
        "fifo-producer-consumer",
        [case("asyncio.Queue", asyncio.Queue, raw=True), case("mtaio AsyncQueue", AsyncQueue)],
        note="two tasks, maxsize 100",
    )


def _priority(n: int) -> Scenario:
    rng = random.Random(42)
    batch = 1000
    priorities = [rng.randrange(1000) for _ in range(batch)]
    rounds = max(1, n // batch)

    async def raw() -> None:
        queue: asyncio.PriorityQueue[tuple[int, int]] = asyncio.PriorityQueue()
        put, get = queue.put, queue.get
        for _ in range(rounds):
            for i, p in enumerate(priorities):
                await put((p, i))
            for _ in priorities:
                await get()

    async def mtaio() -> None:
        queue: PriorityQueue[int] = PriorityQueue()
        put, get = queue.put, queue.get
        for _ in range(rounds):
            for i, p in enumerate(priorities):
                await put(i, priority=p)
            for _ in priorities:
                await get()

    ops = rounds * batch
    return Scenario(
        "priority-batches",
        [
            Case("asyncio.PriorityQueue", raw, ops, raw=True),
            Case("mtaio PriorityQueue", mtaio, ops),
        ],
        note="1000 random priorities in, 1000 out",
    )


@workload("queue")
def queue(options: Options) -> list[Scenario]:
    n = options.scale(100_000)
    return [_same_task(n), _producer_consumer(n), _priority(n)]
