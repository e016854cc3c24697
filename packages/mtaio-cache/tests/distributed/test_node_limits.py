"""CacheNode against hostile clients: each attack of issue 14 (items 1-4), run on a node in a
child process whose memory (RSS) is measured, while another client's PING must stay fast.

A node that froze would freeze the test too if it ran in the test's own event loop: it runs
in a child process, and every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from mtaio.cache import CacheNode
from mtaio.cache._cli import PASSWORD_ENV, _parser, _password
from mtaio.cache._node import default_max_clients

CHILD = Path(__file__).with_name("node_child.py")
MiB = 1 << 20
PING_LIMIT = 0.5  # seconds another client may wait for PING during an attack

# Attacks against a node in a child process: `check` runs these on Python 3.11 only.
pytestmark = [
    pytest.mark.skipif(
        not Path("/proc/self/status").exists(), reason="RSS is read from /proc (Linux)"
    ),
    pytest.mark.slow,
]


def pack(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


class Child:
    def __init__(self, pid: int, port: int) -> None:
        self.pid = pid
        self.address = ("127.0.0.1", port)

    def rss(self) -> int:
        """The child's resident memory, in bytes."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")  # pragma: no cover


@contextlib.asynccontextmanager
async def child_node(**config: Any) -> AsyncIterator[Child]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        json.dumps(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = await proc.stdout.readline()
        assert line.startswith(b"PORT "), line
        yield Child(proc.pid, int(line.split()[1]))
    finally:
        proc.kill()
        await proc.wait()


class PingProbe:
    """PINGs the node every 20 ms on its own connection and keeps the slowest answer."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.pings = 0

    async def run(self, address: tuple[str, int], stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(*address)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                writer.write(b"PING\r\n")
                try:
                    async with asyncio.timeout(5):
                        assert await reader.readline() == b"+PONG\r\n"
                finally:
                    self.worst = max(self.worst, time.perf_counter() - started)
                self.pings += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.02):
                        await stop.wait()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def ping_probe(child: Child) -> AsyncIterator[PingProbe]:
    probe = PingProbe()
    stop = asyncio.Event()
    task = asyncio.create_task(probe.run(child.address, stop))
    try:
        yield probe
    finally:
        stop.set()
        await task
    assert probe.pings > 0
    assert probe.worst < PING_LIMIT, f"PING took {probe.worst:.2f} s during the attack"


async def peak_rss(child: Child, seconds: float) -> int:
    """The highest RSS seen while sampling for ``seconds``."""
    peak = child.rss()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        peak = max(peak, child.rss())
    return peak


async def read_to_end(reader: asyncio.StreamReader) -> int:
    """Read until the node closes the connection; return the bytes received."""
    total = 0
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(20):
            while chunk := await reader.read(1 << 20):
                total += len(chunk)
    return total


# -- 1. SCAN MATCH cannot backtrack -------------------------------------------------------


async def test_a_backtracking_match_pattern_does_not_stall_the_node() -> None:
    async with child_node() as child, ping_probe(child):
        reader, writer = await asyncio.open_connection(*child.address)
        writer.write(pack(b"SET", b"a" * 60, b"v"))
        assert await reader.readline() == b"+OK\r\n"
        writer.write(pack(b"SCAN", b"0", b"MATCH", b"*a*a*a*a*a*a*a*a*a*a*a*a*b", b"COUNT", b"10"))
        async with asyncio.timeout(2):
            assert await reader.readuntil(b"*0\r\n") == b"*2\r\n$1\r\n0\r\n*0\r\n"
        writer.close()


# -- 2. SCAN costs O(COUNT), and a cursor costs nothing --------------------------------------


async def test_scan_calls_are_cheap_and_cursors_hold_no_copy() -> None:
    async with child_node(keys=100_000) as child:
        async with ping_probe(child):
            reader, writer = await asyncio.open_connection(*child.address)
            writer.write(pack(b"SCAN", b"0", b"COUNT", b"1") * 300)
            async with asyncio.timeout(20):
                for _ in range(300):
                    await reader.readuntil(b"*1\r\n")
                    await reader.readline()
                    await reader.readline()
            writer.close()
        before = child.rss()
        held = []
        for _ in range(100):  # abandoned cursors, connections left open
            r, w = await asyncio.open_connection(*child.address)
            w.write(pack(b"SCAN", b"0", b"COUNT", b"1"))
            await r.readuntil(b"*1\r\n")
            held.append(w)
        grown = child.rss() - before
        for w in held:
            w.close()
        assert grown < 12 * MiB, f"100 open cursors took {grown / MiB:.0f} MiB"


# -- 3. replies are streamed; one client's output is capped --------------------------------


@pytest.mark.parametrize("attack", ["pipelined GET", "one MGET"])
async def test_large_replies_to_a_client_that_does_not_read_stay_bounded(attack: str) -> None:
    copies = 200  # of a 1 MiB value: 200 MiB of replies if they were built in memory
    request = (
        pack(b"GET", b"big") * copies
        if attack == "pipelined GET"
        else pack(b"MGET", *[b"big"] * copies)
    )
    async with child_node(big=MiB, node={"idle_timeout": 0.5}) as child:
        before = child.rss()
        async with ping_probe(child):
            reader, writer = await asyncio.open_connection(*child.address)
            writer.write(request)  # and read nothing
            peak = await peak_rss(child, 1.0)
        assert peak - before < 24 * MiB, f"{attack}: the node grew {(peak - before) / MiB:.0f} MiB"
        # Replies left unread for idle_timeout: the node hung up on that client.
        received = await read_to_end(reader)
        assert received < copies * MiB // 4
        writer.close()


# -- 4. connections, partial requests, passwords ------------------------------------------


async def test_partial_requests_share_a_global_budget() -> None:
    node = {"max_value_bytes": 4 * MiB, "max_buffered_bytes": 16 * MiB, "idle_timeout": 30}
    async with child_node(node=node) as child:
        before = child.rss()
        streams = []
        async with ping_probe(child):
            for _ in range(24):  # each parks 4 MiB minus one byte of a SET
                r, w = await asyncio.open_connection(*child.address)
                w.write(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (4 * MiB))
                w.write(b"x" * (4 * MiB - 1))
                streams.append((r, w))
            for _, w in streams:
                with contextlib.suppress(ConnectionError):  # the node dropped it
                    await w.drain()
            peak = await peak_rss(child, 1.0)
        assert peak - before < 40 * MiB, f"24 partial requests took {(peak - before) / MiB:.0f} MiB"
        closed = 0
        for r, w in streams:
            try:
                async with asyncio.timeout(0.2):
                    closed += await r.read() == b""
            except ConnectionError:
                closed += 1
            except TimeoutError:
                pass  # still held
            w.close()
        assert closed >= 24 - 5  # at most four of them (16 MiB) can be held at once


async def test_partial_requests_and_unauthenticated_clients_time_out() -> None:
    async with CacheNode("t", password="pw", idle_timeout=0.3) as node:
        # Unauthenticated, sending nothing:
        r1, w1 = await asyncio.open_connection(*node.address)
        # Authenticated, then a request that never completes:
        r2, w2 = await asyncio.open_connection(*node.address)
        w2.write(b"AUTH pw\r\n*2\r\n$4\r\nECHO\r\n$10\r\nabc")
        assert await r2.readline() == b"+OK\r\n"
        # Authenticated and idle between requests: kept.
        r3, w3 = await asyncio.open_connection(*node.address)
        w3.write(b"AUTH pw\r\n")
        assert await r3.readline() == b"+OK\r\n"
        async with asyncio.timeout(3):
            assert await r1.read() == b""
            assert await r2.read() == b""
        w3.write(b"PING\r\n")
        assert await r3.readline() == b"+PONG\r\n"
        assert node.stats().dropped_clients == 2
        for w in (w1, w2, w3):
            w.close()


async def test_a_client_streaming_requests_is_not_timed_out() -> None:
    async with CacheNode("stream", idle_timeout=0.5) as node:
        reader, writer = await asyncio.open_connection(*node.address)
        request = pack(b"ECHO", b"x" * 20)
        stream = request * 40
        # 40 chunks 50 ms apart (2 s in all), each ending inside a request: the node is
        # always holding a partial request, but each chunk completes one.
        size = len(request)
        cuts = [0, *(i * size + 5 for i in range(1, 40)), len(stream)]
        for start, end in itertools.pairwise(cuts):
            writer.write(stream[start:end])
            await asyncio.sleep(0.05)
        async with asyncio.timeout(5):
            for _ in range(40):
                assert await reader.readline() == b"$20\r\n"
                await reader.readline()
        assert node.stats().dropped_clients == 0
        writer.close()


async def test_unauthenticated_clients_cannot_lock_out_others() -> None:
    async with CacheNode("m", password="pw", max_clients=5) as node:
        idle = [await asyncio.open_connection(*node.address) for _ in range(5)]
        host, port = node.address
        good = aioredis.Redis(host=host, port=port, password="pw", protocol=2)
        try:
            assert await good.ping()  # displaced the oldest unauthenticated socket
            assert await idle[0][0].read() == b""
        finally:
            await good.aclose()
        for _, w in idle:
            w.close()
    async with CacheNode("full", max_clients=1) as node:
        r, w = await asyncio.open_connection(*node.address)
        w.write(b"PING\r\n")
        assert await r.readline() == b"+PONG\r\n"
        r2, w2 = await asyncio.open_connection(*node.address)
        assert b"max number of clients" in await r2.read()
        assert node.stats().rejected_clients == 1
        w.close()
        w2.close()


async def test_unauthenticated_requests_are_small() -> None:
    async with CacheNode("u", password="pw") as node:
        r, w = await asyncio.open_connection(*node.address)
        w.write(b"*2\r\n$4\r\nAUTH\r\n$100000\r\n")
        reply = await r.read()
        assert b"Protocol error" in reply and b"exceeds the limit of 16384" in reply
        w.close()
        r, w = await asyncio.open_connection(*node.address)
        w.write(b"*11\r\n")
        assert b"array of 11 exceeds the limit of 10" in await r.read()
        w.close()


async def test_wrong_passwords_close_the_connection_and_noauth_hides_commands() -> None:
    async with CacheNode("p", password="pw") as node:
        r, w = await asyncio.open_connection(*node.address)
        w.write(b"NOSUCH x\r\nAUTH a\r\nAUTH b\r\nAUTH c\r\nPING\r\n")
        assert await r.read() == (
            b"-NOAUTH Authentication required.\r\n"
            + b"-WRONGPASS invalid username-password pair or user is disabled.\r\n" * 3
        )
        assert node.stats().auth_failures == 3
        w.close()


def test_max_clients_fits_the_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert default_max_clients() == 1024 - 32
    monkeypatch.setattr(resource, "getrlimit", lambda _: (20, 4096))
    assert default_max_clients() == 1
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY,) * 2)
    assert default_max_clients() == 10_000


async def test_a_public_bind_without_password_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mtaio.cache"):
        async with CacheNode("public", ("0.0.0.0", 0)):
            pass
        async with CacheNode("local", ("localhost", 0)):
            pass
        async with CacheNode("protected", ("0.0.0.0", 0), password="pw"):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "without a password" in warnings[0]


def test_cli_reads_the_password_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert _password(_parser().parse_args([])) is None
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert _password(_parser().parse_args([])) == "from-env"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert _password(_parser().parse_args(["--password-file", str(secret)])) == "from-file"
    assert _password(_parser().parse_args(["--password", "flag"])) == "flag"
    secret.write_text("")
    with pytest.raises(ValueError, match="empty"):
        _password(_parser().parse_args(["--password-file", str(secret)]))
    os.environ.pop(PASSWORD_ENV, None)
