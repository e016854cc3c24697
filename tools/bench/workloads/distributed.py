"""Workload "distributed": DistributedCache against raw redis-py on real redis-server processes.

Every round writes N values of 100 bytes and then reads them back (N = 50k, 5k with
``--quick``), so one round is 2N operations.

* one-by-one: a single coroutine awaiting each operation in turn. Raw baseline: redis-py
  ``await r.set()`` / ``await r.get()``. Beside it DistributedCache with RF=1 on one node.
* 50 tasks: the same operations spread over 50 concurrent tasks. Raw baseline: redis-py
  one-by-one from one coroutine (the issue's yardstick); beside it redis-py from 50 tasks
  (its pool), redis-py pipelines of 100 commands (hand batching), and DistributedCache with
  RF=1 on one node, RF=2 on three nodes (two writes per set), and RF=1 on a CacheNode.

Values go through ``RawSerializer`` (bytes as they are) so the cache pays for its envelope
and routing, not for JSON. The servers are started by the workload (``redis-server --save ''``
on free loopback ports) and killed at exit; redis-benchmark's own figures for the same
value size are printed as the server's ceiling.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from mtaio.cache import CacheNode, DistributedCache, RawSerializer

from .._runner import Case, Options, Scenario, workload

VALUE = b"x" * 100
TASKS = 50
_started: list[subprocess.Popen[bytes]] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server() -> tuple[str, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "the distributed workload needs redis-server (apt-get install redis-server)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _started.append(proc)
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(8).startswith(b"+PONG"):
                    return ("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@atexit.register
def _kill_servers() -> None:
    for proc in _started:
        proc.kill()
        proc.wait()


def _redis_benchmark(port: int, n: int) -> str:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return "redis-benchmark not installed"
    found = []
    for extra in ([], ["-P", "50"]):
        args = ["-p", str(port), "-t", "set,get", "-n", str(n), "-d", "100", "-c", "50", "-q"]
        out = subprocess.run(
            [binary, *args, *extra], capture_output=True, text=True, check=False
        ).stdout.replace("\r", "\n")
        figures = [line.strip() for line in out.splitlines() if "requests per" in line]
        found.append(f"redis-benchmark -c 50 -d 100 {' '.join(extra)}: " + "; ".join(figures))
    return " | ".join(found)


Op = Callable[[str], Awaitable[Any]]


def _sequential(set_: Callable[[str, bytes], Awaitable[Any]], get: Op, n: int) -> Any:
    keys = [f"bench:{i}" for i in range(n)]

    async def run() -> None:
        for k in keys:
            await set_(k, VALUE)
        for k in keys:
            await get(k)

    return run


def _concurrent(set_: Callable[[str, bytes], Awaitable[Any]], get: Op, n: int) -> Any:
    per = n // TASKS
    slices = [[f"bench:{t}:{i}" for i in range(per)] for t in range(TASKS)]

    async def worker(keys: list[str]) -> None:
        for k in keys:
            await set_(k, VALUE)
        for k in keys:
            await get(k)

    async def run() -> None:
        await asyncio.gather(*(worker(keys) for keys in slices))

    return run


def _pipelined(client: aioredis.Redis, n: int) -> Any:
    keys = [f"bench:{i}" for i in range(n)]

    async def run() -> None:
        for start in range(0, n, 100):
            pipe = client.pipeline(transaction=False)
            for k in keys[start : start + 100]:
                pipe.set(k, VALUE)
            await pipe.execute()
        for start in range(0, n, 100):
            pipe = client.pipeline(transaction=False)
            for k in keys[start : start + 100]:
                pipe.get(k)
            await pipe.execute()

    return run


def _cache(nodes: list[tuple[str, int]], rf: int) -> DistributedCache[bytes]:
    return DistributedCache[bytes](
        nodes, replication_factor=rf, serializer=RawSerializer(), namespace="bench"
    )


@workload("distributed")
def distributed(options: Options) -> list[Scenario]:
    n = options.scale(50_000)
    one = _redis_server()
    three = [_redis_server() for _ in range(3)]
    note = _redis_benchmark(one[1], n)
    print(f"server ceiling: {note}", file=sys.stderr)
    raw = aioredis.Redis(host=one[0], port=one[1], protocol=2)
    rf1 = _cache([one], 1)
    rf2 = _cache(three, 2)
    node = CacheNode("bench", ("127.0.0.1", 0))
    on_node: list[DistributedCache[bytes]] = []

    async def start_node() -> None:
        if not on_node:
            await node.start()
            on_node.append(_cache([node.address], 1))

    def node_case(kind: Callable[..., Any]) -> Any:
        async def run() -> None:
            cache = on_node[0]
            await kind(cache.set, cache.get, n)()

        return run

    sequential = Scenario(
        f"one-by-one ({n} sets + {n} gets, 100 B)",
        [
            Case("raw redis-py await each", _sequential(raw.set, raw.get, n), 2 * n, raw=True),
            Case("mtaio DistributedCache RF=1", _sequential(rf1.set, rf1.get, n), 2 * n),
        ],
        note=note,
    )
    concurrent = Scenario(
        f"{TASKS} tasks ({n} sets + {n} gets, 100 B)",
        [
            Case("raw redis-py one-by-one", _sequential(raw.set, raw.get, n), 2 * n, raw=True),
            Case("raw redis-py, 50 tasks", _concurrent(raw.set, raw.get, n), 2 * n),
            Case("raw redis-py, pipelines of 100", _pipelined(raw, n), 2 * n),
            Case("mtaio RF=1, 50 tasks (auto-pipelined)", _concurrent(rf1.set, rf1.get, n), 2 * n),
            Case("mtaio RF=2 on 3 nodes, 50 tasks", _concurrent(rf2.set, rf2.get, n), 2 * n),
            Case(
                "mtaio RF=1 on a CacheNode, 50 tasks",
                node_case(_concurrent),
                2 * n,
                setup=start_node,
            ),
        ],
        note="RF=2 writes every set to two servers; the 2 cores are shared with the servers.",
    )
    return [sequential, concurrent]
