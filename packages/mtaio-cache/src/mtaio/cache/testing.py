"""Test helpers for code that uses a real Redis or Valkey server.

They live in mtaio-base as :mod:`mtaio.testing` (every package's tests share them); this
module keeps the names importable from where mtaio-cache 0.1 documented them.
"""

from mtaio.testing import RedisServer as RedisServer
from mtaio.testing import find_redis_server as find_redis_server
from mtaio.testing import free_port as free_port

__all__ = ("RedisServer", "find_redis_server", "free_port")
