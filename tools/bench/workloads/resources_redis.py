"""Workload "resources-redis": rate limiters shared through one local redis-server.

try_acquire, 1 task and 50 tasks: ``RateLimiter(store=RedisStore)`` deciding each request
with one round trip, against the raw floor (redis-py calling the same GCRA script through
``register_script``, EVALSHA, in a loop: what the limiter costs on top of the round trip),
and the ``limits`` library's async Redis storage (redis-py implementation), moving window
and sliding-window counter. Every limiter has a huge rate: every call is granted, the
figure is the cost of a decision. From 50 tasks the store pipelines the calls made while
one is on the wire, which the raw loop does not; a second reference, one redis-py pipeline
of 50 EVALSHAs at a time, shows what pipelining alone can reach.

accuracy 200/s, 4 processes: four worker processes of 25 tasks each share one limit of
200 per second for a few seconds of real time. mtaio waits with ``await acquire()`` (the
reservation the server computed, slept locally); ``limits`` (moving window, 200 per
second) has no waiting call, so its tasks do what its users do: ``hit()``, and on a refusal
sleep until the window's reset time and try again. Figures: ``achieved/s`` over the window
from the first grant, ``max 1s`` (the most grants in any one-second window), ``cap 1s``
(what the limit allows in one second: rate + burst for mtaio, 200 for the moving window),
``calls/grant`` (calls to Redis per grant over the whole run, including, for mtaio, the
reservation each of the 100 tasks holds when the run ends and its refund when cancelled;
for limits, the refused hits and the window queries). ops/s is meaningless there (each
round lasts the period).

The server is started by the workload (``redis-server --save ''`` on a free loopback port)
and killed at exit; redis-benchmark's figures for ``EVALSHA`` of the same script on the same
server are printed as the first scenario's note.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from mtaio.resources import RateLimiter, RedisStore
from mtaio.resources._shared_rate import GCRA

from .._runner import Case, Extra, Options, Scenario, workload

HUGE = 1e12
TASKS = 50
_started: list[Any] = []  # RedisServer


def _redis_server() -> int:
    from mtaio.testing import RedisServer

    try:
        server = RedisServer()
    except FileNotFoundError:
        raise SystemExit(
            "resources-redis needs redis-server (apt-get install redis-server)"
        ) from None
    server.start()
    _started.append(server)
    return server.port


@atexit.register
def _kill_servers() -> None:
    for server in _started:
        server.kill()


def _script_args() -> list[str]:
    interval = 1e6 / HUGE
    return ["1.0", "0", repr(interval), repr(HUGE * interval)]


def _redis_benchmark(port: int, n: int) -> str:
    """redis-benchmark's own figure for EVALSHA of the GCRA script (and for PING)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return "redis-benchmark not installed"
    sha = hashlib.sha1(GCRA.encode()).hexdigest()
    cli = shutil.which("redis-cli")
    if cli is not None:
        subprocess.run(
            [cli, "-p", str(port), "SCRIPT", "LOAD", GCRA], capture_output=True, check=False
        )
    found = []
    for clients in (1, 50):
        out = subprocess.run(
            [
                binary,
                *("-p", str(port), "-n", str(n), "-c", str(clients), "-q"),
                *("EVALSHA", sha, "1", "{bench:rb}:rate:0", *_script_args()),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.replace("\r", "\n")
        figures = [
            line.strip().split(": ", 1)[-1] for line in out.splitlines() if "per second" in line
        ]
        found.append(f"redis-benchmark EVALSHA -c {clients}: {figures[-1] if figures else out!r}")
    return "; ".join(found)


def _loop(call: Callable[[], Awaitable[object]], n: int, tasks: int) -> Callable[[], Any]:
    per = max(1, n // tasks)

    async def worker() -> None:
        for _ in range(per):
            await call()

    async def run() -> None:
        await asyncio.gather(*(worker() for _ in range(tasks)))

    return run


def _throughput(options: Options, port: int) -> list[Scenario]:
    n = options.scale(20_000)
    url = f"redis://127.0.0.1:{port}/0"
    raw_client = aioredis.Redis.from_url(url)
    script = raw_client.register_script(GCRA)
    raw_args = _script_args()

    def raw_call() -> Awaitable[object]:
        return script(keys=["{bench:raw}:rate:0"], args=raw_args)

    sha = hashlib.sha1(GCRA.encode()).hexdigest()

    def raw_pipelines(batches: int) -> Callable[[], Any]:
        async def run() -> None:
            await raw_client.script_load(GCRA)
            for _ in range(batches):
                pipe = raw_client.pipeline(transaction=False)
                for _ in range(TASKS):
                    pipe.execute_command("EVALSHA", sha, 1, "{bench:raw}:rate:0", *raw_args)
                await pipe.execute()

        return run

    store = RedisStore(url)
    mine = RateLimiter(HUGE, HUGE, store=store, name="bench")
    peers: list[tuple[str, Callable[[], Awaitable[object]], int, Any]] = []
    try:
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
    except ImportError:  # pragma: no cover - peers are optional
        pass
    else:
        storage = RedisStorage(f"async+{url}", implementation="redispy")
        item = RateLimitItemPerSecond(10**9)
        moving = MovingWindowRateLimiter(storage)
        sliding = SlidingWindowCounterRateLimiter(storage)

        async def clear() -> None:
            await storage.reset()

        def hit_moving() -> Awaitable[object]:
            return moving.hit(item, "bench")

        def hit_sliding() -> Awaitable[object]:
            return sliding.hit(item, "bench")

        # the moving window stores every hit of the window: a tenth of the calls
        peers.append(("limits moving window (async redis)", hit_moving, 10, clear))
        peers.append(("limits sliding-window counter (async redis)", hit_sliding, 1, None))
    scenarios = []
    for tasks in (1, TASKS):
        cases = [
            Case("raw redis-py EVALSHA, same script", _loop(raw_call, n, tasks), n, raw=True),
            Case(
                "mtaio RateLimiter(store=RedisStore).try_acquire",
                _loop(mine.try_acquire, n, tasks),
                n,
            ),
        ]
        for name, call, fraction, setup in peers:
            m = max(tasks, n // fraction)
            cases.append(Case(name, _loop(call, m, tasks), m, setup=setup))
        if tasks > 1:
            batches = max(1, n // TASKS)
            cases.append(
                Case(
                    f"raw redis-py pipelines of {TASKS} EVALSHA (reference)",
                    raw_pipelines(batches),
                    batches * TASKS,
                )
            )
        note = _redis_benchmark(port, n * 5) if tasks == 1 else ""
        if note:
            print(f"resources-redis, same server: {note}", file=sys.stderr)  # the runner's
            # tables leave scenario notes out
        scenarios.append(Scenario(f"try_acquire, {tasks} task(s)", cases, note=note))
    return scenarios


def _accuracy_case(
    name: str, kind: str, port: int, seconds: float, cap: float, burst: float
) -> Case:
    rate = 200

    async def run() -> Extra:
        shared = f"accuracy-{kind}-{time.time()}"  # one name for the four processes
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                kind,
                json.dumps({"port": port, "rate": rate, "seconds": seconds, "name": shared}),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(4)
        ]
        for proc in procs:
            assert proc.stdout is not None
            await proc.stdout.readline()  # ready
        start = time.time() + 0.3
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start}\n".encode())
            await proc.stdin.drain()
        outs = [json.loads((await p.communicate())[0].decode().splitlines()[-1]) for p in procs]
        every = sorted(t for o in outs for t in o["grants"])
        calls = sum(o["calls"] for o in outs)
        first = every[0]
        window = seconds - 1.0  # the workers run one second past the window
        stamps = [t for t in every if t < first + window]
        worst = 0
        j = 0
        for i, t in enumerate(stamps):
            while stamps[j] <= t - 1.0:
                j += 1
            worst = max(worst, i - j + 1)
        achieved = (len(stamps) - burst) / window  # the steady rate: the bucket left out
        return {
            "achieved/s": achieved,
            "error %": 100 * (achieved - rate) / rate,
            "max 1s": worst,
            "cap 1s": cap,
            "calls/grant": calls / max(1, len(every)),
        }

    return Case(name, run, int(rate * seconds))


def _accuracy(options: Options, port: int) -> Scenario:
    seconds = 3.0 if options.quick else 6.0
    cases = [
        _accuracy_case("mtaio RateLimiter (burst 20), acquire", "mtaio", port, seconds, 220, 20),
    ]
    try:
        import limits  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    else:
        cases.append(
            _accuracy_case(
                "limits moving window, hit + sleep to reset", "limits", port, seconds, 200, 0
            )
        )
    return Scenario(
        "accuracy 200/s, 4 processes x 25 tasks",
        cases,
        note="real time; the window is the period from the first grant (one second less than "
        "the run); ops/s is meaningless here",
    )


@workload("resources-redis")
def resources_redis_workload(options: Options) -> list[Scenario]:
    """Shared rate limiters on one local redis-server: decision cost and accuracy."""
    port = _redis_server()
    return [*_throughput(options, port), _accuracy(options, port)]


# -- the worker processes of the accuracy scenario ---------------------------------------


async def _worker(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    url = f"redis://127.0.0.1:{args['port']}/0"
    rate = args["rate"]
    grants: list[float] = []
    calls = 0
    if kind == "mtaio":
        store = RedisStore(url)
        limiter = RateLimiter(rate, store=store, name=args["name"])

        async def take() -> None:
            await limiter.acquire()

    else:
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        storage = RedisStorage(f"async+{url}", implementation="redispy")
        moving = MovingWindowRateLimiter(storage)
        item = RateLimitItemPerSecond(rate)

        async def take() -> None:
            nonlocal calls
            while True:
                calls += 1
                if await moving.hit(item, args["name"]):
                    return
                calls += 1
                stats = await moving.get_window_stats(item, args["name"])
                await asyncio.sleep(max(0.001, stats.reset_time - time.time()))

    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = float(line)
    await asyncio.sleep(max(0.0, start - time.time()))
    end = start + args["seconds"]

    async def task() -> None:
        while time.time() < end:
            await take()
            grants.append(time.time())

    tasks = [asyncio.create_task(task()) for _ in range(25)]
    await asyncio.sleep(max(0.0, end - time.time()))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if kind == "mtaio":
        calls = limiter.stats().round_trips  # reservations, and refunds of the cancelled
    return {"grants": grants, "calls": calls}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_worker(sys.argv[1], json.loads(sys.argv[2])))), flush=True)
