"""The demo runs on embedded defaults, its figures add up, and it survives Redis nodes dying.

Nodes go down for real: redis-server processes killed (SIGKILL) before the run, in the middle
of it, and after the last order, before the final clean-up that used to raise. ``--workers``
runs real worker processes, one of them SIGKILLed mid-run, on the embedded nodes and on a
real redis-server that shares the payment limits.
"""

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mtaio.cache.testing import RedisServer, find_redis_server
from mtaio.events import EventEmitter
from mtaio.testing import require_redis_server

# Real OS processes and wall-clock runs: `check` runs these on Python 3.11 only.
pytestmark = pytest.mark.slow


DEMO = Path(__file__).parent / "demo.py"


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mtaio_demo", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mtaio_demo"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def redis_pair() -> Iterator[list[RedisServer]]:
    """Two redis-server processes on free loopback ports, killed after the test."""
    if find_redis_server() is None:
        reason = "redis-server is not installed: the demo's node-failure tests need it"
        if os.environ.get("MTAIO_REQUIRE_REDIS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    servers = [RedisServer(), RedisServer()]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


def url(server: RedisServer) -> str:
    return f"redis://{server.host}:{server.port}"


def name(server: RedisServer) -> str:
    return f"{server.host}:{server.port}"


def on_redis(demo: ModuleType, servers: list[RedisServer], duration: str) -> Any:
    """The demo's arguments for a short quiet run on ``servers``."""
    urls = [arg for server in servers for arg in ("--redis", url(server))]
    return demo.parse_args(["--duration", duration, "--rate", "100", "--quiet", *urls])


def check_adds_up(summary: dict[str, Any]) -> None:
    orders = summary["orders"]
    assert orders["emitted"] == orders["completed"] + orders["failed"] + orders["rejected"]
    assert sum(summary["notifications"].values()) == orders["emitted"]
    cache = summary["cache"]
    assert cache["lookups"] == orders["emitted"] - orders["rejected"]


async def test_a_short_run_on_embedded_nodes_adds_up(demo: ModuleType) -> None:
    args = demo.parse_args(["--duration", "1.5", "--rate", "120", "--quiet", "--seed", "3"])
    summary: dict[str, Any] = await demo.run(args)

    orders = summary["orders"]
    assert orders["emitted"] == 180  # rate x duration
    check_adds_up(summary)
    assert orders["rejected"] >= 1  # about 2% of the orders are malformed
    assert summary["notifications"]["order.completed"] == orders["completed"]
    cache = summary["cache"]
    assert cache["local hit rate"] + cache["distributed hit rate"] <= 1.0
    assert cache["loads from the database"] >= 1
    assert cache["distributed tier errors"] == 0
    assert len(summary["nodes"]) == 2
    assert all(node["up"] for node in summary["nodes"].values())
    payments = summary["payments"]
    assert payments["calls"] >= orders["completed"]
    assert payments["breaker trips"] == 1  # the outage in the middle of the run
    assert payments["outage errors"] >= 5
    assert summary["problems"] == []
    assert summary["profile"]["order"]["count"] == orders["emitted"]
    assert summary["system"]["requests"] == orders["emitted"]
    assert summary["storage"].startswith("2 embedded CacheNodes")


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    payments = summary["payments"]
    return {
        "orders": summary["orders"],
        "declined": payments["declined cards"],
        "transient": payments["transient errors (retried)"],
        "trips": payments["breaker trips"],
    }


async def test_the_seed_decides_the_counts(demo: ModuleType) -> None:
    def args(seed: int) -> Any:
        return demo.parse_args(["--duration", "1", "--rate", "150", "--quiet", "--seed", str(seed)])

    first = _counts(await demo.run(args(11)))
    again = _counts(await demo.run(args(11)))
    other = _counts(await demo.run(args(12)))

    assert first == again
    assert first["trips"] == 1
    assert other != first
    assert other["orders"]["emitted"] == first["orders"]["emitted"] == 150


@pytest.mark.redis
async def test_a_redis_node_down_at_the_start_is_reported(
    demo: ModuleType, redis_pair: list[RedisServer]
) -> None:
    up, down = redis_pair
    down.kill()
    summary = await demo.run(on_redis(demo, [up, down], "1"))

    check_adds_up(summary)
    assert f"Redis node {url(down)} is down at the start" in summary["problems"]
    assert summary["nodes"][name(up)]["up"]
    assert summary["nodes"][name(down)]["errors"] >= 1
    assert summary["orders"]["completed"] > 0


@pytest.mark.redis
async def test_redis_nodes_dying_mid_run_fall_back_to_the_database(
    demo: ModuleType, redis_pair: list[RedisServer]
) -> None:
    emitter = EventEmitter()

    @emitter.on("demo.started")
    async def kill_later(event: Any) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.4, redis_pair[0].kill)
        loop.call_later(0.7, redis_pair[1].kill)

    summary = await demo.run(on_redis(demo, redis_pair, "1.2"), emitter)

    check_adds_up(summary)
    assert summary["cache"]["distributed tier errors"] >= 1
    problems = "\n".join(summary["problems"])
    assert problems.count("distributed cache unavailable, falling back to the database") == 1
    assert "could not clear the distributed cache at the end" in problems
    assert summary["orders"]["completed"] > 0
    assert not any(node["up"] for node in summary["nodes"].values())


@pytest.mark.redis
async def test_redis_nodes_down_before_the_clean_up_keep_the_summary(
    demo: ModuleType, redis_pair: list[RedisServer]
) -> None:
    emitter = EventEmitter()

    @emitter.on("demo.drained")
    async def kill_all(event: Any) -> None:
        for server in redis_pair:
            server.kill()

    summary = await demo.run(on_redis(demo, redis_pair, "0.8"), emitter)

    check_adds_up(summary)
    assert summary["cache"]["distributed tier errors"] == 0  # they were up for the whole run
    assert any("could not clear the distributed cache" in p for p in summary["problems"])


def _demo(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, str(DEMO), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.redis
def test_the_command_prints_its_summary_and_exits_0_with_a_node_down(
    redis_pair: list[RedisServer],
) -> None:
    up, down = redis_pair
    down.kill()
    done = _demo(
        "--duration", "0.6", "--rate", "80", "--quiet", "--redis", url(up), "--redis", url(down)
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert f"Redis node {url(down)} is down at the start" in done.stdout
    for title in ("orders", "cache nodes", "payments", "profile"):
        assert title in done.stdout
    # the cache nodes are a table with one row per node, not a Python dict
    assert "{'" not in done.stdout
    assert name(up) in done.stdout
    assert name(down) in done.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://localhost:6379", "is not a redis:// or rediss:// URL"),
        ("redis://localhost:notaport", "--redis: Port could not be cast"),
        ("redis://localhost:99999", "--redis: Port out of range"),
        ("redis://:6379", "names no host"),
        ("localhost:6379", "is not a redis:// or rediss:// URL"),
    ],
)
def test_a_malformed_redis_url_is_a_usage_error(
    demo: ModuleType, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--redis", value])

    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: demo" in err
    assert message in err


def test_the_command_refuses_a_malformed_url_without_a_traceback() -> None:
    done = _demo("--redis", "http://localhost:6379")

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "usage: demo" in done.stderr
    assert "--redis: 'http://localhost:6379' is not a redis:// or rediss:// URL" in done.stderr


def test_help_names_the_flags(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--duration", "--rate", "--redis", "--seed", "--quiet", "--workers"):
        assert flag in out


def test_bad_flags_are_refused(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--rate", "0"])
    assert info.value.code == 2
    assert "--duration and --rate must be positive" in capsys.readouterr().err


# --workers: real worker processes against the parent's embedded nodes or a real redis-server.


def check_workers_add_up(summary: dict[str, Any], killed: int = 0) -> None:
    """The totals are the sums of the workers that reported, and the limits held."""
    orders = summary["orders"]
    assert orders["emitted"] == orders["completed"] + orders["failed"] + orders["rejected"]
    reported = [w for w in summary["workers"].values() if w["status"] == "ok"]
    assert len(reported) == len(summary["workers"]) - killed
    for key, value in orders.items():
        assert sum(w[key] for w in reported) == value
    received = sum(summary["notifications"].values())
    if killed:  # what the killed worker published before it died came too
        assert received >= orders["emitted"]
    else:  # every worker's notifications reached the parent over the shared channel
        assert received == orders["emitted"]
    assert summary["cache"]["lookups"] == orders["emitted"] - orders["rejected"]
    limits = summary["limits"]
    assert limits["rate held"], limits
    assert limits["cap held"], limits
    assert 1 <= limits["most payment calls in flight at once"] <= limits["concurrency cap"]


async def test_two_workers_on_embedded_nodes_share_the_cache_and_the_channel(
    demo: ModuleType,
) -> None:
    argv = ["--workers", "2", "--duration", "1.5", "--rate", "100", "--quiet", "--seed", "3"]
    summary: dict[str, Any] = await demo.run(demo.parse_args(argv))

    assert summary["storage"].startswith("2 embedded CacheNodes")
    assert summary["storage"].endswith("2 worker processes")
    assert summary["problems"] == []
    workers = list(summary["workers"].values())
    assert [w["status"] for w in workers] == ["ok", "ok"]
    assert [w["emitted"] for w in workers] == [75, 75]  # rate / workers x duration each
    assert workers[0]["pid"] != workers[1]["pid"]
    check_workers_add_up(summary)
    cache = summary["cache"]
    # every profile one worker loads and stores drops the key from the other's local tier
    assert cache["invalidations sent"] == cache["loads from the database"] >= 1
    assert cache["invalidations received"] >= 1
    assert cache["distributed tier hit rate"] > 0  # one worker reads what the other stored
    limits = summary["limits"]
    assert limits["limits"].startswith("NOT shared: rate/2 and cap/2 per worker")
    assert limits["concurrency cap"] == 16
    assert limits["allowed in 1 s (rate + burst)"] == 100 * 1.2 + 20
    assert summary["payments"]["breaker trips"] >= 1


def test_the_command_prints_the_workers_summary() -> None:
    done = _demo("--workers", "2", "--duration", "1", "--rate", "60", "--quiet")

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "2 worker processes" in done.stdout
    for title in ("orders", "limits", "cache", "notifications", "payments", "workers"):
        assert title in done.stdout
    assert "largest 1 s window" in done.stdout
    assert "NOT shared" in done.stdout


@pytest.mark.redis
async def test_two_workers_on_redis_share_one_rate_limit(demo: ModuleType) -> None:
    require_redis_server()
    with RedisServer() as server:
        argv = ["--workers", "2", "--duration", "2.5", "--rate", "50", "--quiet"]
        summary: dict[str, Any] = await demo.run(demo.parse_args([*argv, "--redis", url(server)]))

    assert summary["problems"] == []
    check_workers_add_up(summary)
    limits = summary["limits"]
    assert limits["limits"] == f"shared by the 2 workers through a RedisStore on {url(server)}"
    assert limits["limiter fallbacks (store unreachable)"] == 0
    assert limits["concurrency cap"] == 16
    # 60 calls a second (the rate x 1.2) plus a burst of 20, for the two workers together;
    # after the outage both workers' backlogs press on it, each alone would pass more.
    rate, burst = 50 * 1.2, 20
    window = limits["largest 1 s window of admitted payment calls"]
    assert rate <= window <= rate + burst + rate * demo.TIMESTAMP_ERROR


async def test_a_worker_killed_mid_run_is_reported_and_the_others_summarised(
    demo: ModuleType,
) -> None:
    emitter = EventEmitter()
    killed: list[int] = []

    @emitter.on("demo.started")
    async def kill_later(event: Any) -> None:
        pid = event.data["pids"][1]
        killed.append(pid)
        asyncio.get_running_loop().call_later(0.6, os.kill, pid, signal.SIGKILL)

    argv = ["--workers", "2", "--duration", "1.5", "--rate", "80", "--quiet"]
    summary: dict[str, Any] = await demo.run(demo.parse_args(argv), emitter)

    workers = summary["workers"]
    assert workers["worker 1"]["status"] == "ok"
    assert workers["worker 2"]["status"] == "killed by SIGKILL"
    assert workers["worker 2"]["pid"] == killed[0]
    assert workers["worker 2"]["emitted"] == "-"
    assert (
        f"worker 2 (pid {killed[0]}) killed by SIGKILL: the summary covers the other workers"
        in summary["problems"]
    )
    assert summary["orders"]["emitted"] == workers["worker 1"]["emitted"] == 60
    check_workers_add_up(summary, killed=1)


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5"])
def test_a_bad_worker_count_is_a_usage_error(
    demo: ModuleType, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--workers", value])

    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: demo" in err
    assert "--workers" in err


def test_the_limit_checks_count_windows_and_overlaps(demo: ModuleType) -> None:
    # half-open 1 s windows: 0.5 and 1.5 are a full second apart, never in one window
    assert demo.largest_window([0.0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert demo.largest_window([2.0, 0.0, 2.5, 2.9, 0.1]) == 3  # any order
    assert demo.largest_window([]) == 0
    # a hold that ends when another starts does not overlap it
    assert demo.peak_holders([(0.0, 1.0), (1.0, 2.0)]) == 1
    assert demo.peak_holders([(0.0, 2.0), (1.0, 3.0), (1.5, 1.6), (2.5, 4.0)]) == 3
    assert demo.peak_holders([]) == 0
