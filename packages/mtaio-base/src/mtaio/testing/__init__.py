"""Helpers for testing code built on mtaio, shared by every package's own tests.

:class:`RedisServer` runs a throwaway ``redis-server`` on a loopback port, without persistence,
for as long as a test needs it: start it, point a Redis-backed mtaio object at its ``url`` or
``address``, then kill it, pause it (``SIGSTOP``, a server that stops answering) or restart it
to test failure handling. :func:`require_redis_server` skips a test loudly when the binary is
missing (or fails it where ``MTAIO_REQUIRE_REDIS=1``). :class:`~mtaio.typing.ManualClock`
drives time in tests of anything that takes a ``clock``. :func:`check_value` and
:data:`BAD_VALUES`, with predicates such as :func:`positive_int` and :func:`optional`, run
the bad-values check: each value accepted, or refused with an error naming the argument.

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
from ._values import BAD_VALUES as BAD_VALUES
from ._values import check_value as check_value
from ._values import is_int as is_int
from ._values import is_real as is_real
from ._values import non_negative as non_negative
from ._values import non_negative_int as non_negative_int
from ._values import optional as optional
from ._values import positive as positive
from ._values import positive_int as positive_int

__all__ = (
    "RedisServer",
    "require_redis_server",
    "find_redis_server",
    "free_port",
    "REQUIRE_REDIS_ENV",
    "ManualClock",
    "BAD_VALUES",
    "check_value",
    "is_int",
    "is_real",
    "non_negative",
    "non_negative_int",
    "optional",
    "positive",
    "positive_int",
)

_publish_module(globals())
