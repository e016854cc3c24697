"""Workload "limiter": rate-limiter overhead and accuracy, concurrency-limiter overhead.

overhead: 200k sequential acquires from a limiter that never has to wait (a huge rate),
against a hand-written token bucket (the raw baseline), aiolimiter's ``AsyncLimiter`` and
limits' fixed and moving windows on its async memory storage (``hit`` answers yes or no,
it never waits; the moving window, which stores every hit, does 10k per round).

accuracy: 200 per second for 2 s (real time), 50 tasks acquiring in a loop. Figures:
``achieved/s`` (grants minus the initial bucket, over 2 s: the steady rate), ``max 1s``
(the most grants in any window of one second) and ``cap 1s`` (rate + burst, the most a
token bucket may allow). ops/s is the plain count of grants per second.

semaphore: 200k acquire/release pairs of ``ConcurrencyLimiter`` against
``asyncio.Semaphore`` (the raw baseline), uncontended and with 100 tasks sharing 10 permits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from mtaio.resources import ConcurrencyLimiter, RateLimiter

from .._runner import Case, Extra, Options, Scenario, workload

HUGE = 1e12


class RawBucket:
    """What one writes by hand: refill on every call, sleep for the deficit."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = time.monotonic()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            tokens = self.tokens + (now - self.last) * self.rate
            self.tokens = tokens if tokens < self.capacity else self.capacity
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


def _overhead(options: Options) -> Scenario:
    n = options.scale(200_000)
    raw = RawBucket(HUGE, HUGE)
    mine = RateLimiter(HUGE, HUGE)

    async def run_raw() -> None:
        acquire = raw.acquire
        for _ in range(n):
            await acquire()

    async def run_mtaio() -> None:
        acquire = mine.acquire
        for _ in range(n):
            await acquire()

    async def run_mtaio_try() -> None:
        try_acquire = mine.try_acquire
        for _ in range(n):
            try_acquire()

    cases = [
        Case("raw token bucket", run_raw, n, raw=True),
        Case("mtaio RateLimiter.acquire", run_mtaio, n),
        Case("mtaio RateLimiter.try_acquire (sync)", run_mtaio_try, n),
    ]
    try:
        from aiolimiter import AsyncLimiter
    except ImportError:  # pragma: no cover - peers are optional
        pass
    else:
        theirs = AsyncLimiter(HUGE, 1)

        async def run_aiolimiter() -> None:
            for _ in range(n):
                async with theirs:
                    pass

        cases.append(Case("aiolimiter AsyncLimiter", run_aiolimiter, n))
    try:
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import MemoryStorage
        from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
    except ImportError:  # pragma: no cover
        pass
    else:
        fixed = FixedWindowRateLimiter(MemoryStorage())
        moving = MovingWindowRateLimiter(MemoryStorage())
        item = RateLimitItemPerSecond(10**9)
        # the moving window keeps every hit of the window: its cost grows with the count,
        # so it gets a twentieth of the calls (ops/s stays comparable, the round stays short)
        m = max(1, n // 20)

        async def run_fixed() -> None:
            hit = fixed.hit
            for _ in range(n):
                await hit(item, "bench")

        async def run_moving() -> None:
            await moving.storage.reset()
            hit = moving.hit
            for _ in range(m):
                await hit(item, "bench")

        cases.append(Case("limits fixed window (memory)", run_fixed, n))
        cases.append(Case("limits moving window (memory)", run_moving, m))
    return Scenario("acquire, never waits", cases)


def _accuracy_case(
    name: str,
    make: Callable[[], Callable[[], Awaitable[object]]],
    rate: float,
    burst: float,
    seconds: float,
    tasks: int,
    raw: bool = False,
) -> Case:
    async def run() -> Extra:
        acquire = make()
        loop = asyncio.get_running_loop()
        stamps: list[float] = []
        start = loop.time()

        async def worker() -> None:
            while True:
                await acquire()
                stamps.append(loop.time() - start)

        workers = [asyncio.create_task(worker()) for _ in range(tasks)]
        await asyncio.sleep(seconds)
        for w in workers:  # the waiters are cancelled: none of them may take a token
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        stamps = sorted(t for t in stamps if t < seconds)
        worst = 0
        j = 0
        for i, t in enumerate(stamps):
            while stamps[j] < t - 1.0:
                j += 1
            worst = max(worst, i - j + 1)
        achieved = (len(stamps) - burst) / seconds
        return {
            "achieved/s": achieved,
            "error %": 100 * (achieved - rate) / rate,
            "max 1s": worst,
            "cap 1s": rate + burst,
        }

    return Case(name, run, int(rate * seconds), raw=raw)


def _accuracy(options: Options) -> Scenario:
    rate, tasks = 200.0, 50
    seconds = 1.0 if options.quick else 2.0

    def raw() -> Callable[[], Awaitable[object]]:
        return RawBucket(rate, 20).acquire

    def mine() -> Callable[[], Awaitable[object]]:
        return RateLimiter(rate).acquire  # the default burst: rate / 10 = 20

    def strict() -> Callable[[], Awaitable[object]]:
        return RateLimiter(rate, burst=1).acquire  # strict pacing: one every 5 ms

    cases = [
        _accuracy_case("raw token bucket (burst 20)", raw, rate, 20, seconds, tasks, raw=True),
        _accuracy_case("mtaio RateLimiter (burst 20)", mine, rate, 20, seconds, tasks),
        _accuracy_case("mtaio RateLimiter (burst 1)", strict, rate, 1, seconds, tasks),
    ]
    try:
        from aiolimiter import AsyncLimiter
    except ImportError:  # pragma: no cover
        pass
    else:

        def theirs() -> Callable[[], Awaitable[object]]:
            return AsyncLimiter(rate, 1).acquire  # its bucket holds max_rate = 200

        cases.append(_accuracy_case("aiolimiter AsyncLimiter", theirs, rate, rate, seconds, tasks))
    return Scenario(
        "accuracy 200/s, 50 tasks",
        cases,
        note="real time: each round lasts the full period; achieved/s excludes the initial bucket",
    )


def _semaphore(options: Options) -> list[Scenario]:
    n = options.scale(200_000)

    sem = asyncio.Semaphore(10)
    mine = ConcurrencyLimiter(10)

    async def run_sem() -> None:
        for _ in range(n):
            async with sem:
                pass

    async def run_mtaio() -> None:
        for _ in range(n):
            async with mine:
                pass

    async def run_mtaio_explicit() -> None:
        acquire, release = mine.acquire, mine.release
        for _ in range(n):
            await acquire()
            release()

    uncontended = Scenario(
        "concurrency, uncontended",
        [
            Case("asyncio.Semaphore", run_sem, n, raw=True),
            Case("mtaio ConcurrencyLimiter (async with)", run_mtaio, n),
            Case("mtaio ConcurrencyLimiter acquire/release", run_mtaio_explicit, n),
        ],
    )

    tasks = 100
    per_task = max(1, n // tasks)

    def contended_case(name: str, make: Callable[[], object], raw: bool = False) -> Case:
        async def run() -> None:
            limiter = make()

            async def worker() -> None:
                for _ in range(per_task):
                    async with limiter:  # type: ignore[attr-defined]
                        await asyncio.sleep(0)

            await asyncio.gather(*(worker() for _ in range(tasks)))

        return Case(name, run, tasks * per_task, raw=raw)

    contended = Scenario(
        "concurrency, 100 tasks on 10 permits",
        [
            contended_case("asyncio.Semaphore", lambda: asyncio.Semaphore(10), raw=True),
            contended_case("mtaio ConcurrencyLimiter", lambda: ConcurrencyLimiter(10)),
        ],
    )
    return [uncontended, contended]


@workload("limiter")
def limiter_workload(options: Options) -> list[Scenario]:
    """Rate-limiter overhead and accuracy, concurrency-limiter overhead."""
    return [_overhead(options), _accuracy(options), *_semaphore(options)]
