"""Fixtures for the tests against real Redis: a server per test, worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mtaio.resources import RedisStore
from mtaio.testing import RedisServer, require_redis_server

WORKER = Path(__file__).with_name("shared_worker.py")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free loopback port (loud skip when not installed)."""
    binary = require_redis_server()
    server = RedisServer(binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    """A :class:`RedisStore` on ``redis_server``, closed after the test."""
    async with RedisStore(redis_server.url, timeout=0.5) as shared:
        yield shared


class Workers:
    """Worker processes (``shared_worker.py``): started, released together, reaped."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, mode: str, **args: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), mode, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def expect(proc: subprocess.Popen[str], line: str, timeout: float = 30.0) -> None:
        """Wait for ``proc`` to print ``line`` (its first line)."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        got = proc.stdout.readline().strip()
        assert got == line, f"worker said {got!r}, expected {line!r}"
        assert time.monotonic() < deadline

    def start(self, procs: list[subprocess.Popen[str]], delay: float = 0.3) -> float:
        """Wait until every worker is ready, then release them all at one wall time."""
        for proc in procs:
            self.expect(proc, "ready")
        start = time.time() + delay
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start}\n")
            proc.stdin.flush()
        return start

    @staticmethod
    def result(proc: subprocess.Popen[str], timeout: float = 60.0) -> dict[str, Any]:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"worker failed with {proc.returncode}"
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return data

    def reap(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture
def workers() -> Iterator[Workers]:
    """Spawn worker processes; every one left is killed and reaped after the test."""
    pool = Workers()
    try:
        yield pool
    finally:
        pool.reap()
