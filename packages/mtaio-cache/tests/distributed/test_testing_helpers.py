import socket
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mtaio.cache import DistributedCache
from mtaio.cache.testing import RedisServer, find_redis_server, free_port
from mtaio.exceptions import CacheConnectionError, ConfigurationError

from .conftest import require_redis_server


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_missing_binary_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_redis_server() is None
    with pytest.raises(FileNotFoundError, match="apt-get install redis-server"):
        RedisServer()


def test_a_binary_that_exits_is_reported() -> None:
    server = RedisServer(binary="/bin/false")
    with pytest.raises(CacheConnectionError, match="exited with 1"):
        server.start()
    assert not server.running
    with pytest.raises(CacheConnectionError, match="is not running"):
        server.pause()
    with pytest.raises(ConfigurationError, match="timeout must be a positive number"):
        server.start(timeout=0)


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    silent = tmp_path / "silent-server"
    silent.write_text("#!/bin/sh\nexec sleep 30\n")
    silent.chmod(0o755)
    server = RedisServer(binary=str(silent))
    with pytest.raises(CacheConnectionError, match="did not answer"):
        server.start(timeout=0.3)
    assert not server.running  # the silent process was killed, not leaked


async def test_start_pause_resume_kill_and_password() -> None:
    binary = require_redis_server()
    with RedisServer(binary=binary, password="s3cret") as server:
        assert repr(server) == f"RedisServer(127.0.0.1:{server.port}, running)"
        server.start()  # already running: nothing happens
        client = aioredis.Redis(host=server.host, port=server.port, password="s3cret")
        try:
            assert await client.ping()
            server.pause()
            server.resume()
            assert await client.ping()
        finally:
            await client.aclose()
        cache: DistributedCache[str] = DistributedCache(
            [f"redis://:s3cret@127.0.0.1:{server.port}/0"], replication_factor=1
        )
        async with cache:
            await cache.set("k", "v")
            assert await cache.get("k") == "v"
    assert not server.running
    assert repr(server).endswith("stopped)")
    server.kill()  # idempotent
