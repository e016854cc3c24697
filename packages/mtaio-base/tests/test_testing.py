import socket
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mtaio.exceptions import CacheConnectionError, ConfigurationError
from mtaio.testing import (
    REQUIRE_REDIS_ENV,
    RedisServer,
    find_redis_server,
    free_port,
    require_redis_server,
)
from mtaio.typing import connect_redis


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
        assert server.url == f"redis://:s3cret@127.0.0.1:{server.port}/0"
        by_url = connect_redis(server.url, extra="mtaio-base")
        try:
            assert await by_url.set("k", "v")
            assert await by_url.get("k") == b"v"
        finally:
            await by_url.aclose()
    assert not server.running
    assert repr(server).endswith("stopped)")
    server.kill()  # idempotent


def test_require_redis_server_skips_loudly_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(REQUIRE_REDIS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="SKIPPED"):
        require_redis_server()
    monkeypatch.setenv(REQUIRE_REDIS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"REQUIRED \(MTAIO_REQUIRE_REDIS=1\)"):
        require_redis_server()


def test_url_without_password() -> None:
    server = RedisServer(port=6390, binary="/bin/false")
    assert server.url == "redis://127.0.0.1:6390/0"
    assert server.address == ("127.0.0.1", 6390)
