"""Fixtures: a real redis-server on a free loopback port (loud skip when it is missing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mtaio.testing import RedisServer, require_redis_server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; ``MTAIO_REQUIRE_REDIS=1`` fails instead of skipping."""
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL, with the database emptied before the test."""
    import redis

    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url
