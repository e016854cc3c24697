"""Helpers for testing code built on mtaio, shared by every package's own tests.

:class:`RedisServer` runs a throwaway ``redis-server`` on a loopback port, without persistence,
for as long as a test needs it: start it, point a Redis-backed mtaio object at its ``url`` or
``address``, then kill it, pause it (``SIGSTOP``, a server that stops answering) or restart it
to test failure handling. :func:`require_redis_server` skips a test loudly when the binary is
missing (or fails it where ``MTAIO_REQUIRE_REDIS=1``). :class:`~mtaio.typing.ManualClock`
drives time in tests of anything that takes a ``clock``.

Example::

    from mtaio.cache import DistributedCache
    from mtaio.testing import RedisServer

    with RedisServer() as server:          # a free loopback port
        cache = DistributedCache([server.address], replication_factor=1)
        ...
        server.pause()                     # now it stops answering: timeouts
"""

from mtaio.typing import ManualClock as ManualClock
from mtaio.typing import publish_module as _publish_module

from ._redis_server import REQUIRE_REDIS_ENV as REQUIRE_REDIS_ENV
from ._redis_server import RedisServer as RedisServer
from ._redis_server import find_redis_server as find_redis_server
from ._redis_server import free_port as free_port
from ._redis_server import require_redis_server as require_redis_server

__all__ = (
    "RedisServer",
    "require_redis_server",
    "find_redis_server",
    "free_port",
    "REQUIRE_REDIS_ENV",
    "ManualClock",
)

_publish_module(globals())
