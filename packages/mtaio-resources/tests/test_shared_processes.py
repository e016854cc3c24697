"""Limiters shared by real OS processes through a real redis-server.

Every load loop is bounded by an end time; the servers listen on free loopback ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from mtaio.resources import ConcurrencyLimiter, RedisStore
from mtaio.testing import RedisServer

# Real OS processes and wall-clock runs: `check` runs these on Python 3.11 only.
pytestmark = pytest.mark.slow


Workers = Any  # the `workers` fixture of conftest.py (test modules do not import it)


def test_four_processes_share_one_rate(redis_server: RedisServer, workers: Workers) -> None:
    # the default burst (rate / 10): it absorbs the lateness of a loaded machine's wake-ups
    # (a grant due at t but observed at t + 30 ms shifts into the next window)
    rate, burst, duration = 200, 20, 5.0
    procs = [
        workers.spawn(
            "rate",
            url=redis_server.url,
            name="payments",
            rate=rate,
            burst=burst,
            tasks=25,
            duration=duration + 1.0,  # the window starts at the first grant: run past it
        )
        for _ in range(4)
    ]
    workers.start(procs)
    results = [workers.result(p) for p in procs]
    # every process got its share: the limit is the fleet's, not each process's
    assert all(len(r["due"]) > 100 for r in results)
    # The window is the 5 s from the first grant: a process that starts late (a loaded
    # machine) cannot use tokens from before it asked, as with any token bucket.
    due = sorted(t for r in results for t in r["due"])
    first = due[0]
    admitted = [t for t in due if t < first + duration]
    # When the server let each grant through (its clock when it decided, plus the wait it
    # computed): every window of one second admits at most rate + burst.
    assert _busiest_second(admitted) <= rate + burst
    # the total is within 2% of rate x duration (the initial burst included)
    assert abs(len(admitted) - rate * duration) <= 0.02 * rate * duration, len(admitted)
    # When the tasks woke up: later by the loop's and the machine's lateness (a process
    # stalled 100 ms by a loaded machine stamps its grants late, bunching them); loosely.
    woke = sorted(t for r in results for t in r["grants"] if t < first + duration)
    assert _busiest_second(woke) <= (rate + burst) * 1.1
    # one round trip per grant; besides, per process: the warm-up call, and for each task
    # the reservation it was sleeping on at the end and the refund of it when cancelled
    trips = sum(r["round_trips"] for r in results)
    assert trips <= sum(len(r["due"]) for r in results) + 4 * (1 + 2 * 25)


def _busiest_second(stamps: list[float]) -> int:
    """The most stamps in any window of one second (sliding over every stamp)."""
    worst = j = 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


def test_concurrency_across_processes_and_a_killed_holder(
    redis_server: RedisServer, workers: Workers
) -> None:
    limit, lease = 10, 1.0
    holder = workers.spawn(
        "hold", url=redis_server.url, name="jobs", limit=limit, permits=3, lease=lease
    )
    workers.expect(holder, "holding")
    procs = [
        workers.spawn(
            "concurrency",
            url=redis_server.url,
            name="jobs",
            limit=limit,
            lease=lease,
            tasks=6,
            hold=0.02,
            duration=4.0,
        )
        for _ in range(3)
    ]
    start = workers.start(procs)
    time.sleep(max(0.0, start + 1.0 - time.time()))
    killed_at = time.time()
    os.kill(holder.pid, signal.SIGKILL)
    results = [workers.result(p) for p in procs]
    # never more than `limit` holders at once, across the fleet
    assert max(r["peak"] for r in results) <= limit
    samples = sorted(s for r in results for s in r["samples"])
    # while the dead process held 3, the others shared the other 7...
    before = [n for t, n in samples if start + 0.2 < t < killed_at]
    assert before and max(before) <= limit - 3
    # ...and its 3 came back within the lease (plus one renewal period of slack)
    back = [t for t, n in samples if n > limit - 3]
    assert back, "the dead holder's permits never came back"
    assert min(back) - killed_at <= lease + lease / 3 + 0.5
    # throughput near the limit after the lease: the fleet stays nearly full
    occupancy = sorted(s for r in results for s in r["occupancy"])
    late = [n for t, n in occupancy if killed_at + lease + 0.5 < t < start + 3.8]
    assert late and sum(late) / len(late) >= 0.7 * limit


def test_breaker_opens_for_every_process(redis_server: RedisServer, workers: Workers) -> None:
    common = {"url": redis_server.url, "name": "downstream", "threshold": 3, "reset": 30}
    # The failing process fails fast; the healthy ones call every 50 ms (a success between
    # the failures would reset the fleet's count of consecutive failures).
    failing = workers.spawn("breaker", failing=True, pause=0, duration=5, **common)
    healthy = [
        workers.spawn("breaker", failing=False, pause=0.05, duration=5, **common) for _ in range(3)
    ]
    workers.start([failing, *healthy])
    opened = workers.result(failing)
    assert opened["opened_at"] is not None
    for proc in healthy:
        seen = workers.result(proc)
        assert seen["refused_at"] is not None
        # refused at the first call after the opening: one call (50 ms pause + one round
        # trip) later at most, with slack for a loaded machine
        assert seen["refused_at"] - opened["opened_at"] < 0.5


def test_redis_killed_mid_run_then_restarted(redis_server: RedisServer, workers: Workers) -> None:
    timeout = 0.3
    closed = workers.spawn(
        "outage",
        url=redis_server.url,
        name="o1",
        timeout=timeout,
        policy="fail_closed",
        duration=5.0,
    )
    open_ = workers.spawn(
        "outage",
        url=redis_server.url,
        name="o2",
        timeout=timeout,
        policy="fail_open",
        duration=5.0,
    )
    start = workers.start([closed, open_])
    time.sleep(max(0.0, start + 1.0 - time.time()))
    redis_server.kill()
    down_at = time.time()
    time.sleep(1.0)
    redis_server.start()  # the same port: the processes reconnect on their own
    up_at = time.time()
    for proc, policy in ((closed, "fail_closed"), (open_, "fail_open")):
        result = workers.result(proc)
        calls = result["calls"]
        assert result["store_errors"] >= 1
        # no call ever hangs: each returns within the store's timeout (and slack)
        assert max(d for _, d, _ in calls) < timeout + 0.5
        during = [o for t, _, o in calls if down_at + 0.1 < t < up_at - 0.1]
        assert during
        if policy == "fail_closed":
            assert set(during) == {"failed"}
        else:
            assert "granted" in during and "failed" not in during
            assert result["fallbacks"] >= len(during)
        # recovered without restarting the process (the back-off is 2 s at most): the
        # last second is served by Redis again
        after = [o for t, _, o in calls if t > up_at + 2.1]
        assert after and set(after) == {"granted"}


async def test_permits_held_by_a_cancelled_task_come_back(store: RedisStore) -> None:
    limiter = ConcurrencyLimiter(1, store=store, name="cancel", lease=1.0)
    other = ConcurrencyLimiter(1, store=store, name="cancel", lease=1.0)
    await limiter.acquire()

    async def hold() -> None:
        async with other:
            await asyncio.sleep(10)

    waiting = asyncio.create_task(hold())
    await asyncio.sleep(0.05)
    waiting.cancel()  # cancelled while waiting: it holds nothing
    await asyncio.gather(waiting, return_exceptions=True)
    await limiter.release()
    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.1)
    assert other.borrowed == 1
    holder.cancel()  # cancelled while holding: the permit goes back
    await asyncio.gather(holder, return_exceptions=True)
    await asyncio.sleep(0.05)
    assert other.borrowed == 0
    assert await limiter.try_acquire()
    assert await store.client.zcard(store.key("cancel", "holders")) == 1
    await limiter.close()
    await other.close()
