import math
import socket
from collections.abc import Callable
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


def test_the_value_predicates() -> None:
    from mtaio.testing import (
        BAD_VALUES,
        is_int,
        is_real,
        non_negative,
        non_negative_int,
        optional,
        positive,
        positive_int,
    )

    def accepted(check: Callable[[object], bool]) -> list[object]:
        return [v for v in BAD_VALUES if check(v)]

    assert accepted(is_real) == [-1, 0, math.inf, -math.inf, 1.5, 10**12]
    assert accepted(is_int) == [-1, 0, 10**12]
    assert accepted(positive) == [math.inf, 1.5, 10**12]
    assert accepted(non_negative) == [0, math.inf, 1.5, 10**12]
    assert accepted(positive_int) == [10**12]
    assert accepted(non_negative_int) == [0, 10**12]
    assert accepted(optional(positive_int)) == [10**12, None]


async def test_check_value_passes_a_right_verdict_and_fails_a_wrong_one() -> None:
    from mtaio.exceptions import ConfigurationTypeError, require_positive
    from mtaio.testing import BAD_VALUES, check_value, positive

    async def strict(v: object) -> object:
        return require_positive("delay", v)  # type: ignore[type-var]

    refused = [await check_value("delay", v, positive, strict) for v in BAD_VALUES]
    assert [v for v, e in zip(BAD_VALUES, refused, strict=True) if e is None] == [
        math.inf,
        1.5,
        10**12,
    ]
    assert isinstance(refused[BAD_VALUES.index("5")], ConfigurationTypeError)

    async def lax(v: object) -> object:
        return v

    with pytest.raises(AssertionError, match=r"delay=-1 was accepted"):
        await check_value("delay", -1, positive, lax)
    with pytest.raises(AssertionError, match=r"delay=-1 refused"):
        await check_value("delay", -1, lambda v: True, strict)
    with pytest.raises(AssertionError, match="does not name timeout"):
        await check_value("timeout", -1, positive, strict)

    async def untyped(v: object) -> object:
        raise ConfigurationError(f"delay must be a number, got {v!r}")

    with pytest.raises(AssertionError, match="ConfigurationError"):
        await check_value("delay", "5", positive, untyped)
    assert await check_value("delay", "5", positive, untyped, typed=False) is not None
