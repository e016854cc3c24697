"""Fixtures: a real redis-server on a free loopback port (loud skip when it is missing)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator

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


Condition = Callable[[], object]


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(condition, seconds)``: wait (bounded) until a condition holds.

    For conditions another process or a server makes true; the condition may be async.
    """

    async def wait(condition: Condition, seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.01)

    return wait
