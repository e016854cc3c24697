"""Workload "layered": LayeredCache's local tier, its invalidation delay, a read-heavy mix.

One ``redis-server`` (started here on a free loopback port, killed at exit) holds the
distributed tier.

* local-hit: 200k reads of 10k keys all held in the local tier. Raw baseline: a dict read
  in a coroutine; beside it TTLCache alone and LayeredCache (the goal: within 0.8x of
  TTLCache alone).
* invalidation: one cache writes a key that another cache (another connection, another
  subscription) holds locally; the delay runs from the write call until the other's local
  copy is dropped, per write (p50/p99 in ms). Beside it cashews' client-side cache
  (``client_side=True``: Redis 6 CLIENT TRACKING in broadcast mode) on the same server.
* zipf-95/5: three caches (three connections and subscriptions; in one process, so the
  figures compare the two setups rather than measure a fleet) run 95% reads and 5% writes
  over 10k keys drawn from a Zipf(1.1) distribution; with the local tier (LayeredCache) and
  without it (DistributedCache alone). ``remote/op`` counts requests reaching Redis per
  operation; ``local hit%`` the reads the local tier answered.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import itertools
import random
import shutil
import socket
import statistics
import subprocess
import time
from typing import Any

from mtaio.cache import DistributedCache, LayeredCache, RawSerializer, TTLCache

from .._runner import Case, Options, Scenario, workload

KEYS = 10_000
VALUE = b"v" * 100
_started: list[subprocess.Popen[bytes]] = []


def _redis_server() -> tuple[str, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the layered workload needs redis-server (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _started.append(proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return ("127.0.0.1", port)
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


@atexit.register
def _kill_servers() -> None:
    for proc in _started:
        proc.kill()
        proc.wait()


def _layered(address: tuple[str, int], namespace: str) -> LayeredCache[bytes]:
    remote = DistributedCache[bytes](
        [address], replication_factor=1, namespace=namespace, serializer=RawSerializer()
    )
    return LayeredCache(remote, local_ttl=300.0, local_max_size=None)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@workload("layered")
def layered(options: Options) -> list[Scenario]:
    address = _redis_server()
    keys = [f"k{i}" for i in range(KEYS)]
    reads = options.scale(200_000)
    order = [keys[i % KEYS] for i in range(reads)]

    # -- local-hit
    raw: dict[str, bytes] = dict.fromkeys(keys, VALUE)
    ttl_cache = TTLCache[bytes](default_ttl=300.0)
    lay = _layered(address, "bench-hit")
    ready = {"done": False}

    async def fill() -> None:
        if ready["done"]:
            return
        for key in keys:
            await ttl_cache.set(key, VALUE)
        assert await lay.connected(10.0)
        await lay.set_many(dict.fromkeys(keys, VALUE))
        await asyncio.sleep(0.2)  # the writes' own invalidations go by
        await lay.get_many(keys)
        assert len(lay.local) == KEYS, len(lay.local)
        ready["done"] = True

    async def raw_get(key: str) -> bytes | None:
        return raw.get(key)

    async def run_raw() -> None:
        for key in order:
            await raw_get(key)

    async def run_ttl() -> None:
        get = ttl_cache.get
        for key in order:
            await get(key)

    async def run_layered() -> dict[str, float]:
        get = lay.get
        before = lay.stats().local_hits
        for key in order:
            await get(key)
        return {"local hit%": 100.0 * (lay.stats().local_hits - before) / len(order)}

    hit = Scenario(
        "local-hit",
        [
            Case("raw dict", run_raw, reads, raw=True, setup=fill),
            Case("mtaio TTLCache alone", run_ttl, reads, setup=fill),
            Case("**mtaio LayeredCache**", run_layered, reads, setup=fill),
        ],
        note="200k reads of 10k keys held locally",
    )

    # -- invalidation delay
    writes = options.scale(2_000)
    writer, holder = _layered(address, "bench-inv"), _layered(address, "bench-inv")
    received = asyncio.Event()
    original = LayeredCache._on_message

    def timed(self: LayeredCache[Any], data: Any) -> None:
        original(self, data)
        if self is holder:
            received.set()

    async def run_mtaio_delay() -> dict[str, float]:
        LayeredCache._on_message = timed  # type: ignore[method-assign]
        try:
            assert await writer.connected(10.0)
            assert await holder.connected(10.0)
            delays = []
            for i in range(writes):
                received.clear()
                started = time.perf_counter()
                await writer.set("hot", b"%d" % i)
                await asyncio.wait_for(received.wait(), 5.0)
                delays.append(time.perf_counter() - started)
            return {
                "p50 ms": 1000 * _percentile(delays, 0.5),
                "p99 ms": 1000 * _percentile(delays, 0.99),
            }
        finally:
            LayeredCache._on_message = original  # type: ignore[method-assign]

    cases = [Case("**mtaio LayeredCache**", run_mtaio_delay, writes, raw=True)]
    cashews_delay = _cashews_case(address, writes)
    if cashews_delay is not None:
        cases.append(cashews_delay)
    inval = Scenario("invalidation", cases, note="write call -> the other's local copy dropped")

    # -- zipf 95/5 over three caches
    ops = options.scale(30_000)
    rng = random.Random(7)
    weights = list(itertools.accumulate(1.0 / (i + 1) ** 1.1 for i in range(KEYS)))
    total = weights[-1]
    plan = [
        (keys[bisect.bisect_left(weights, rng.random() * total)], rng.random() < 0.05)
        for _ in range(ops)
    ]
    with_local = [_layered(address, "bench-zipf") for _ in range(3)]
    without = [
        DistributedCache[bytes](
            [address], replication_factor=1, namespace="bench-zipf2", serializer=RawSerializer()
        )
        for _ in range(3)
    ]

    async def mix(caches: list[Any], remote_of: Any) -> dict[str, float]:
        before = [remote_of(c).stats() for c in caches]
        local_before = sum(c.stats().local_hits for c in caches if isinstance(c, LayeredCache))

        async def client(n: int, cache: Any) -> None:
            for key, write in plan[n::3]:
                if write:
                    await cache.set(key, VALUE)
                else:
                    await cache.get(key)

        await asyncio.gather(*(client(n, c) for n, c in enumerate(caches)))
        after = [remote_of(c).stats() for c in caches]
        remote = sum(
            (a.reads + a.writes) - (b.reads + b.writes) for a, b in zip(after, before, strict=True)
        )
        local = sum(c.stats().local_hits for c in caches if isinstance(c, LayeredCache))
        reads_done = sum(1 for _, w in plan if not w)
        hit_rate = 100.0 * (local - local_before) / reads_done
        return {"remote/op": remote / ops, "local hit%": hit_rate}

    async def run_without() -> dict[str, float]:
        return await mix(without, lambda c: c)

    async def run_with() -> dict[str, float]:
        for c in with_local:
            assert await c.connected(10.0)
        return await mix(with_local, lambda c: c.remote)

    zipf = Scenario(
        "zipf-95/5",
        [
            Case("DistributedCache alone", run_without, ops, raw=True),
            Case("**mtaio LayeredCache**", run_with, ops),
        ],
        note="3 caches, 95% reads, Zipf(1.1) over 10k keys",
    )
    return [hit, inval, zipf]


def _cashews_case(address: tuple[str, int], writes: int) -> Case | None:
    try:
        from cashews.backends.redis.client_side import BcastClientSide
    except ImportError:  # pragma: no cover - the bench group installs it
        return None
    url = f"redis://{address[0]}:{address[1]}/"
    key = "cashews:hot"  # under cashews' default tracking prefix
    tries = min(writes, 5)  # each missed invalidation costs its 1 s timeout

    async def run() -> dict[str, float]:
        a, b = BcastClientSide(url), BcastClientSide(url)
        async with asyncio.timeout(30):
            await a.init()
            await b.init()
        dropped = asyncio.Event()
        original = b._local_cache.delete

        async def delete(k: Any) -> Any:
            dropped.set()
            return await original(k)

        b._local_cache.delete = delete
        delays: list[float] = []
        missed = 0
        try:
            for i in range(tries):
                await b.get(key)  # hold it locally
                dropped.clear()
                started = time.perf_counter()
                await a.set(key, i)
                try:
                    await asyncio.wait_for(dropped.wait(), 1.0)
                except TimeoutError:
                    missed += 1
                    continue
                delays.append(time.perf_counter() - started)
        finally:
            b._local_cache.delete = original
            await a.close()
            await b.close()
        out = {"missed": float(missed)}
        if delays:
            out["p50 ms"] = 1000 * statistics.median(delays)
            out["p99 ms"] = 1000 * _percentile(delays, 0.99)
        return out

    return Case("cashews BcastClientSide", run, tries)
