"""Reaching Redis or Valkey: the one door every package's ``[redis]`` extra goes through.

Each feature package that can keep state on Redis (the cache, the limiters, the channels)
takes either a URL or a client the application already built, and needs redis-py only when
that part is constructed. This module holds that decision once: import redis-py lazily, name
the extra to install when it is missing, check the URL's scheme, accept an existing
``redis.asyncio`` client as it is (``Redis``, ``RedisCluster``, a Sentinel ``master_for``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, DependencyError

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

__all__ = ("REDIS_SCHEMES", "connect_redis", "redis_key")

#: URL schemes :func:`connect_redis` accepts.
REDIS_SCHEMES = ("redis", "rediss", "unix")


def connect_redis(
    target: object,
    *,
    extra: str,
    argument: str = "url",
    **options: Any,
) -> Redis | RedisCluster:
    """Return a ``redis.asyncio`` client for ``target``.

    Args:
        target: A ``redis://``, ``rediss://`` or ``unix://`` URL, or an existing
            ``redis.asyncio.Redis``/``RedisCluster`` client (returned as it is: the caller
            keeps owning it).
        extra: The distribution and extra that bring redis-py, as the user would type it
            (``"mtaio-resources[redis]"``), named in the error when redis-py is missing.
        argument: The name of the caller's argument, for error messages.
        **options: Passed to ``Redis.from_url`` for a URL (``socket_timeout=...``).

    Returns:
        The client.

    Raises:
        DependencyError: If redis-py is not installed (also an ``ImportError``).
        ConfigurationError: If ``target`` is a URL of another scheme.
        ConfigurationTypeError: If ``target`` is neither a string nor a redis.asyncio client.
    """
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:
        hint = f"pip install '{extra}'"
        raise DependencyError(f"{argument} needs redis-py: {hint}", hint) from exc
    if isinstance(target, str):
        scheme = urlsplit(target).scheme
        if scheme not in REDIS_SCHEMES:
            raise ConfigurationError(
                f"{argument} must be a redis://, rediss:// or unix:// URL, got {target!r}"
            )
        client: Redis = aioredis.Redis.from_url(target, **options)
        return client
    if isinstance(target, aioredis.Redis | aioredis.RedisCluster):
        return target
    raise ConfigurationTypeError(
        f"{argument} must be a redis:// URL or a redis.asyncio client, got {target!r}"
    )


def redis_key(prefix: str, name: str, *parts: str) -> str:
    """Return the key of one part of an object's state, under its hash tag.

    Every key of one object shares the hash tag ``{prefix:name}``, so a script touching
    several of them runs on Redis Cluster (all of them live in one slot).

    Example:
        >>> redis_key("mtaio", "payments", "tokens")
        '{mtaio:payments}:tokens'
    """
    tag = f"{{{prefix}:{name}}}"
    return ":".join((tag, *parts)) if parts else tag
