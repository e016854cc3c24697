"""A worker process for the cross-process tests: ``python shared_worker.py MODE JSON-ARGS``.

Each worker builds its limiter on the given Redis, prints ``ready``, reads the start time
(wall clock, the same on every process of this machine) from stdin, runs its part until the
given end, and prints one JSON line of results. Every loop is bounded by that end time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from mtaio.exceptions import CircuitBreakerError, ResourceLimitError
from mtaio.resources import CircuitBreaker, ConcurrencyLimiter, RateLimiter, RedisStore


async def _start() -> float:
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = float(line)
    await asyncio.sleep(max(0.0, start - time.time()))
    return start


async def rate(args: dict[str, Any]) -> dict[str, Any]:
    async with RedisStore(args["url"]) as store:
        limiter = RateLimiter(args["rate"], burst=args["burst"], store=store, name=args["name"])
        await limiter.try_acquire(1e-9)  # connect and load the script before the start
        start = await _start()
        end = start + args["duration"]
        grants: list[float] = []  # when each task woke up with its tokens
        due: list[float] = []  # when the server's reservation fell due

        async def task() -> None:
            while time.time() < end:
                wait = await limiter.reserve()  # acquire() is this, then the sleep
                # the server's clock when it decided (this machine's wall clock), plus the
                # wait it computed: when the server let this grant through
                decided = float(limiter._engine.server_now) / 1e6  # type: ignore[arg-type]
                due.append(decided + wait)
                await asyncio.sleep(wait)
                grants.append(time.time())

        tasks = [asyncio.create_task(task()) for _ in range(args["tasks"])]
        await asyncio.sleep(max(0.0, end - time.time()))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"grants": grants, "due": due, "round_trips": limiter.stats().round_trips}


async def concurrency(args: dict[str, Any]) -> dict[str, Any]:
    async with RedisStore(args["url"]) as store:
        limiter = ConcurrencyLimiter(
            args["limit"], store=store, name=args["name"], lease=args["lease"]
        )
        counter = store.key(args["name"], "test-inflight")
        start = await _start()
        end = start + args["duration"]
        peak = 0
        done = 0
        # (time, holders in the fleet) each time this process admits a holder
        samples: list[tuple[float, int]] = []

        async def task() -> None:
            nonlocal peak, done
            while time.time() < end:
                async with limiter:
                    inflight = int(await store.client.incr(counter))
                    peak = max(peak, inflight)
                    samples.append((time.time(), inflight))
                    await asyncio.sleep(args["hold"])
                    await store.client.decr(counter)
                done += 1

        # (time, holders in the fleet) every 20 ms: how full the fleet keeps the limit (the
        # admission samples above count 1, 2, 3... within each wave of hand-offs)
        occupancy: list[tuple[float, int]] = []

        async def sampler() -> None:
            while time.time() < end:
                occupancy.append((time.time(), int(await store.client.get(counter) or 0)))
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(task()) for _ in range(args["tasks"])]
        tasks.append(asyncio.create_task(sampler()))
        await asyncio.wait(tasks, timeout=max(0.0, end - time.time()) + 5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await limiter.close()
        return {"peak": peak, "done": done, "samples": samples, "occupancy": occupancy}


async def hold(args: dict[str, Any]) -> dict[str, Any]:
    """Take ``permits`` permits, say so, and keep them until killed."""
    store = RedisStore(args["url"])
    limiter = ConcurrencyLimiter(args["limit"], store=store, name=args["name"], lease=args["lease"])
    for _ in range(args["permits"]):
        await limiter.acquire()
    print("holding", flush=True)
    await asyncio.sleep(60)  # the test kills this process long before
    return {}


async def breaker(args: dict[str, Any]) -> dict[str, Any]:
    async with RedisStore(args["url"]) as store:
        circuit = CircuitBreaker(
            args["threshold"], reset_timeout=args["reset"], store=store, name=args["name"]
        )
        start = await _start()
        end = start + args["duration"]
        refused_at: float | None = None
        opened_at: float | None = None
        calls = 0

        async def fail() -> None:
            raise ConnectionError("downstream down")

        async def succeed() -> None:
            return None

        while time.time() < end and refused_at is None:
            calls += 1
            try:
                await circuit.call(fail if args["failing"] else succeed)
            except ConnectionError:
                if circuit.stats().opened:
                    opened_at = time.time()
                    break
            except CircuitBreakerError:
                refused_at = time.time()
            await asyncio.sleep(args["pause"])
        return {"refused_at": refused_at, "opened_at": opened_at, "calls": calls}


async def outage(args: dict[str, Any]) -> dict[str, Any]:
    """try_acquire in a loop through an outage: (start, duration, outcome) per call."""
    async with RedisStore(args["url"], timeout=args["timeout"]) as store:
        limiter = RateLimiter(
            1000,
            burst=100,
            store=store,
            name=args["name"],
            on_store_error=args["policy"],
            expected_replicas=4,
        )
        start = await _start()
        end = start + args["duration"]
        calls: list[tuple[float, float, str]] = []
        while time.time() < end:
            began = time.time()
            try:
                outcome = "granted" if await limiter.try_acquire() else "refused"
            except ResourceLimitError:
                outcome = "failed"
            calls.append((began, time.time() - began, outcome))
            await asyncio.sleep(0.02)
        stats = limiter.stats()
        return {"calls": calls, "store_errors": stats.store_errors, "fallbacks": stats.fallbacks}


MODES = {
    "rate": rate,
    "concurrency": concurrency,
    "hold": hold,
    "breaker": breaker,
    "outage": outage,
}


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2]
    result = asyncio.run(MODES[mode](json.loads(raw)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
