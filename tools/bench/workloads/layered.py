"""Workload "layered": LayeredCache's local tier, its invalidation delay, a read-heavy mix.

One ``redis-server`` (started here on a free loopback port, killed at exit) holds the
distributed tier.

* local-hit: 200k reads of 10k keys all held in the local tier. Raw baseline: a dict read
  in a coroutine; beside it TTLCache alone and LayeredCache (the goal: within 0.8x of
  TTLCache alone). All three hold the same 10k value objects (those the local tier read
  from Redis), so they differ by their code, not by how many objects a hit touches.
* invalidation: a writer process overwrites keys that a reader process holds in its local
  tier (1k keys, one write every 2 ms so invalidations do not queue behind each other);
  the delay runs from the write call in the writer to the drop of the reader's local copy,
  both stamped with ``time.monotonic_ns`` (CLOCK_MONOTONIC, one clock for every process
  on the machine); p50/p99 in ms, ``missed`` the writes whose drop never came within 5 s,
  ``set p50 ms`` how long the writer's write call itself took.
  Beside it cashews' client-side cache (``BcastClientSide``: Redis 6 CLIENT TRACKING in
  broadcast mode) on the same server, timed the same way (writer ``set`` -> the reader's
  local ``delete``). The ops/s column of this scenario is the paced write rate, not a
  speed.
* zipf-95/5: three processes run 95% reads and 5% writes over 10k keys drawn from a
  Zipf(1.1) distribution (one plan of 30k operations, a third each), with the local tier
  (LayeredCache) and without it (DistributedCache alone). ``redis calls/op``: commands the
  server ran per operation (INFO commandstats delta: reads, writes, invalidation PUBLISHes,
  and the odd subscription heartbeat of the idle workers); ``remote/op``: the distributed
  tier's own reads+writes per operation (its ``stats()``); ``local hit%``: the reads the
  local tiers answered.

The worker processes (spawned once, reused by every round) and the redis-server are stopped
at exit, killed if they do not stop within 5 s.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import contextlib
import ctypes
import itertools
import multiprocessing
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from mtaio.cache import DistributedCache, LayeredCache, RawSerializer, TTLCache

from .._runner import Case, Options, Scenario, workload

KEYS = 10_000
VALUE = b"v" * 100
_started: list[subprocess.Popen[bytes]] = []


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL when the benchmark process dies.

    atexit does not run when the benchmark is killed with SIGKILL; this covers that case.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


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
        preexec_fn=_die_with_parent,
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
    raw: dict[str, bytes] = {}
    ttl_cache = TTLCache[bytes](default_ttl=300.0)
    lay = _layered(address, "bench-hit")
    ready = {"done": False}

    async def fill() -> None:
        if ready["done"]:
            return
        assert await lay.connected(10.0)
        await lay.set_many(dict.fromkeys(keys, VALUE))
        await asyncio.sleep(0.2)  # the writes' own invalidations go by
        held = await lay.get_many(keys)
        assert len(lay.local) == KEYS, len(lay.local)
        # The baselines hold the very value objects the local tier holds (10k distinct
        # ones, read from Redis). Filled with one shared VALUE, they touched one object
        # per hit (returning a value writes its refcount) against LayeredCache's 10k:
        # that alone put a TTLCache holding the same values at 0.79x of one holding VALUE.
        for key in keys:
            raw[key] = held[key]
            await ttl_cache.set(key, held[key])
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

    # -- invalidation delay between processes
    workers = _Workers(address, 3)
    writes = options.scale(1_000)

    def delay_case(name: str, impl: str) -> Case:
        async def run() -> dict[str, float]:
            await workers.call(0, "inval-write-setup", impl, writes)
            await workers.call(1, "inval-hold", impl, writes)
            stamps: list[tuple[int, int]] = await workers.call(
                0, "inval-write", impl, writes, _PACE
            )
            seen: dict[str, int] = await workers.call(1, "inval-collect", 5.0)
            delays = [
                (seen[f"inv{i}"] - t) / 1e6 for i, (t, _) in enumerate(stamps) if f"inv{i}" in seen
            ]
            out = {
                "missed": float(writes - len(delays)),
                "set p50 ms": _percentile([(e - b) / 1e6 for b, e in stamps], 0.5),
            }
            if delays:
                out["p50 ms"] = _percentile(delays, 0.5)
                out["p99 ms"] = _percentile(delays, 0.99)
            return out

        return Case(name, run, writes, raw=impl == "mtaio")

    cases = [delay_case("**mtaio LayeredCache**", "mtaio")]
    if _has_cashews():
        cases.append(delay_case("cashews BcastClientSide", "cashews"))
    inval = Scenario(
        "invalidation",
        cases,
        note="writer and reader in two processes: write call -> the reader's copy dropped",
    )

    # -- zipf 95/5 over three processes
    ops = options.scale(30_000)
    rng = random.Random(7)
    weights = list(itertools.accumulate(1.0 / (i + 1) ** 1.1 for i in range(KEYS)))
    total = weights[-1]
    plan = [
        (keys[bisect.bisect_left(weights, rng.random() * total)], rng.random() < 0.05)
        for _ in range(ops)
    ]
    reads_planned = sum(1 for _, write in plan if not write)

    def mix_case(name: str, impl: str) -> Case:
        async def run() -> dict[str, float]:
            before = _command_calls(address)
            outs = await asyncio.gather(
                *(workers.call(n, "zipf", impl, plan[n::3]) for n in range(3))
            )
            calls = _command_calls(address) - before - 1  # our own INFO
            return {
                "redis calls/op": calls / ops,
                "remote/op": sum(o["remote"] for o in outs) / ops,
                "local hit%": 100.0 * sum(o["local_hits"] for o in outs) / reads_planned,
            }

        return Case(name, run, ops, raw=impl == "remote")

    zipf = Scenario(
        "zipf-95/5",
        [
            mix_case("DistributedCache alone", "remote"),
            mix_case("**mtaio LayeredCache**", "layered"),
        ],
        note="3 processes, 95% reads, Zipf(1.1) over 10k keys",
    )
    return [hit, inval, zipf]


def _has_cashews() -> bool:
    try:
        import cashews  # noqa: F401
    except ImportError:  # pragma: no cover - the bench group installs it
        return False
    return True


def _command_calls(address: tuple[str, int]) -> int:
    """Every command the server has run so far (INFO commandstats), this INFO included."""
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(b"INFO commandstats\r\n")
        data = b""
        while not data.startswith(b"$") or b"\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n")
        size = int(head[1:])
        while len(body) < size + 2:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("INFO reply cut short")
            body += chunk
    calls = 0
    for line in body[:size].decode().splitlines():
        if line.startswith("cmdstat_"):
            fields = dict(f.split("=", 1) for f in line.split(":", 1)[1].split(","))
            calls += int(fields["calls"])
    return calls


class _Workers:
    """Long-lived worker processes (spawned once, reused by every round), one pipe each.

    A worker runs one command at a time and keeps its caches between commands, so rounds
    time the work rather than process start-up. Workers are daemonic, end when their pipe
    closes, and are stopped (then killed) at exit.
    """

    def __init__(self, address: tuple[str, int], count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[BaseProcess] = []
        # kept referenced: the children attach to its semaphores after start() returns
        self.barrier = barrier = ctx.Barrier(count)
        for _ in range(count):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(theirs, address, barrier), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(mine)
            self.procs.append(proc)
        atexit.register(self.stop)

    async def call(self, n: int, command: str, *args: Any) -> Any:
        pipe = self.pipes[n]
        pipe.send((command, *args))
        if not await asyncio.to_thread(pipe.poll, _CALL_TIMEOUT):
            raise TimeoutError(f"worker {n}: no answer to {command!r} in {_CALL_TIMEOUT} s")
        status, out = pipe.recv()
        if status != "ok":
            raise RuntimeError(f"worker {n}: {command!r} failed: {out}")
        return out

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("quit",))
            pipe.close()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()


_PACE = 0.002  # seconds between two timed writes: invalidations do not queue behind others
_CALL_TIMEOUT = 120.0


def _worker(pipe: Connection, address: tuple[str, int], barrier: Any) -> None:
    asyncio.run(_serve(pipe, address, barrier))


async def _serve(pipe: Connection, address: tuple[str, int], barrier: Any) -> None:
    state: dict[str, Any] = {
        "seen": {},  # key -> when its held local copy was dropped (monotonic ns)
        "armed": False,
        "want": 0,
        "all_seen": asyncio.Event(),
        "closers": [],
    }
    try:
        while await asyncio.to_thread(pipe.poll, 600.0):
            try:
                command, *args = pipe.recv()
            except EOFError:
                return  # the parent is gone
            if command == "quit":
                return
            try:
                async with asyncio.timeout(_CALL_TIMEOUT - 10):
                    out = await _COMMANDS[command](state, address, barrier, *args)
            except Exception as exc:
                pipe.send(("error", repr(exc)))
            else:
                pipe.send(("ok", out))
    finally:
        for close in state["closers"]:
            with contextlib.suppress(Exception):
                await close()


async def _inval_cache(state: dict[str, Any], address: tuple[str, int], impl: str) -> Any:
    """This process's cache for the invalidation case ``impl``, made on first use."""
    cache = state.get(impl)
    if cache is not None:
        return cache
    if impl == "mtaio":
        cache = _layered(address, "bench-inv")
        assert await cache.connected(10.0)

        seen = state["seen"]

        # Stamped right after the drop, as cashews' local delete below. The subscription
        # looks these methods up on each message, so patching the class reaches it.
        def stamp(held: list[str]) -> None:
            now = time.monotonic_ns()
            for k in held:
                seen.setdefault(k, now)
            if len(seen) >= state["want"]:
                state["all_seen"].set()

        drop_key = LayeredCache._drop_key
        drop_local = LayeredCache._drop_local

        def timed_key(self: LayeredCache[Any], key: str) -> None:
            held = key in self._ldata
            drop_key(self, key)
            if held and state["armed"] and self is cache:
                stamp([key])

        def timed_local(self: LayeredCache[Any], keys: Iterable[str]) -> None:
            keys = list(keys)
            held = [k for k in keys if k in self._ldata]
            drop_local(self, keys)
            if state["armed"] and self is cache:
                stamp(held)

        LayeredCache._drop_key = timed_key  # type: ignore[method-assign]
        LayeredCache._drop_local = timed_local  # type: ignore[method-assign]
    else:
        from cashews.backends.redis.client_side import BcastClientSide

        # RESP2: with redis-py 8's default RESP3 the invalidations that CLIENT TRACKING
        # redirects arrive as push messages cashews' listener never sees (its local copies
        # then stay stale); cashews' listener reads them as Pub/Sub messages, i.e. RESP2.
        cache = BcastClientSide(f"redis://{address[0]}:{address[1]}/", protocol=2)
        async with asyncio.timeout(30):
            await cache.init()
        if not cache._listen_started.is_set():
            raise RuntimeError("cashews' invalidation listener did not start")
        local = cache._local_cache
        delete = local.delete
        seen = state["seen"]

        async def timed_delete(key: Any) -> Any:
            # A plain dict lookup, as mtaio's hook does: an awaited local.get here would
            # add its own cost to cashews' measured delay.
            held = key in local.store
            out = await delete(key)
            if state["armed"] and held:
                seen.setdefault(key, time.monotonic_ns())
                if len(seen) >= state["want"]:
                    state["all_seen"].set()
            return out

        local.delete = timed_delete
    state[impl] = cache
    state["closers"].append(cache.close)
    return cache


async def _inval_write_setup(
    state: dict[str, Any], address: Any, _: Any, impl: str, n: int
) -> None:
    cache = await _inval_cache(state, address, impl)
    for i in range(n):
        await cache.set(f"inv{i}", VALUE)


async def _inval_hold(state: dict[str, Any], address: Any, _: Any, impl: str, n: int) -> int:
    """Read every key so the local tier holds it, then start recording the drops."""
    cache = await _inval_cache(state, address, impl)
    state["armed"] = False
    await asyncio.sleep(0.3)  # the setup writes' own invalidations go by
    for i in range(n):
        await cache.get(f"inv{i}")
    held = (
        sum(1 for i in range(n) if f"inv{i}" in cache._ldata)
        if impl == "mtaio"
        else sum([await cache._local_cache.get(f"inv{i}") is not None for i in range(n)])
    )
    if held != n:
        raise RuntimeError(f"{impl}: the reader holds {held} of {n} keys")
    state["seen"].clear()
    state["want"] = n
    state["all_seen"].clear()
    state["armed"] = True
    return held


async def _inval_write(
    state: dict[str, Any], address: Any, _: Any, impl: str, n: int, pace: float
) -> list[tuple[int, int]]:
    """Write every key, ``pace`` seconds apart; return when each write call began and ended."""
    cache = state[impl]
    stamps = []
    for i in range(n):
        started = time.monotonic_ns()
        await cache.set(f"inv{i}", b"%d" % i)
        stamps.append((started, time.monotonic_ns()))
        await asyncio.sleep(pace)
    return stamps


async def _inval_collect(state: dict[str, Any], _: Any, __: Any, within: float) -> dict[str, int]:
    """The drops recorded since ``inval-hold``, once all came or ``within`` seconds passed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state["all_seen"].wait(), within)
    state["armed"] = False
    return dict(state["seen"])


async def _zipf(
    state: dict[str, Any],
    address: tuple[str, int],
    barrier: Any,
    impl: str,
    plan: list[tuple[str, bool]],
) -> dict[str, int]:
    name = f"zipf-{impl}"
    cache: Any = state.get(name)
    if cache is None:
        if impl == "layered":
            cache = _layered(address, name)
            assert await cache.connected(10.0)
        else:
            cache = DistributedCache[bytes](
                [address], replication_factor=1, namespace=name, serializer=RawSerializer()
            )
        state[name] = cache
        state["closers"].append(cache.close)
    remote = cache.remote if impl == "layered" else cache
    before = remote.stats()
    hits = cache.stats().local_hits if impl == "layered" else 0
    await asyncio.to_thread(barrier.wait, 30.0)  # the three processes start together
    for key, write in plan:
        if write:
            await cache.set(key, VALUE)
        else:
            await cache.get(key)
    after = remote.stats()
    return {
        "remote": (after.reads + after.writes) - (before.reads + before.writes),
        "local_hits": (cache.stats().local_hits - hits) if impl == "layered" else 0,
    }


_COMMANDS: dict[str, Any] = {
    "inval-write-setup": _inval_write_setup,
    "inval-hold": _inval_hold,
    "inval-write": _inval_write,
    "inval-collect": _inval_collect,
    "zipf": _zipf,
}
