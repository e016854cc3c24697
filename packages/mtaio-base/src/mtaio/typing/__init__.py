"""The typing vocabulary shared by every mtaio package, and the helpers two or more need.

Layout: ``_aliases.py`` holds type variables and aliases, ``_protocols.py`` the
runtime-checkable protocols, ``_result.py`` :class:`Result` and :class:`Config`,
``_helpers.py`` the runtime helpers (calling sync-or-async callables, clocks), ``_redis.py``
the door to Redis/Valkey every package's ``[redis]`` extra goes through.
"""

from ._aliases import JSON as JSON
from ._aliases import AnyFunc as AnyFunc
from ._aliases import AsyncCallable as AsyncCallable
from ._aliases import AsyncCallback as AsyncCallback
from ._aliases import AsyncCleanupCallback as AsyncCleanupCallback
from ._aliases import AsyncErrorCallback as AsyncErrorCallback
from ._aliases import AsyncFunc as AsyncFunc
from ._aliases import Callback as Callback
from ._aliases import CleanupCallback as CleanupCallback
from ._aliases import Clock as Clock
from ._aliases import CoroFunc as CoroFunc
from ._aliases import Decorator as Decorator
from ._aliases import ErrorCallback as ErrorCallback
from ._aliases import K as K
from ._aliases import P as P
from ._aliases import PathLike as PathLike
from ._aliases import Primitive as Primitive
from ._aliases import SyncFunc as SyncFunc
from ._aliases import T as T
from ._aliases import T_co as T_co
from ._aliases import T_contra as T_contra
from ._aliases import TimeValue as TimeValue
from ._aliases import V as V
from ._helpers import ManualClock as ManualClock
from ._helpers import call_maybe_async as call_maybe_async
from ._helpers import is_async_callable as is_async_callable
from ._helpers import publish_module as publish_module
from ._protocols import AsyncCloseable as AsyncCloseable
from ._protocols import AsyncFactory as AsyncFactory
from ._protocols import CacheKey as CacheKey
from ._protocols import CacheValue as CacheValue
from ._protocols import ConfigProtocol as ConfigProtocol
from ._protocols import Event as Event
from ._protocols import EventHandler as EventHandler
from ._protocols import Factory as Factory
from ._protocols import Resource as Resource
from ._protocols import ResourceManager as ResourceManager
from ._redis import REDIS_SCHEMES as REDIS_SCHEMES
from ._redis import connect_redis as connect_redis
from ._redis import redis_key as redis_key
from ._result import Config as Config
from ._result import Result as Result

__all__ = (
    # type variables
    "T",
    "T_co",
    "T_contra",
    "K",
    "V",
    "P",
    # aliases
    "JSON",
    "PathLike",
    "TimeValue",
    "Primitive",
    "Clock",
    "Callback",
    "AsyncCallback",
    "ErrorCallback",
    "AsyncErrorCallback",
    "CleanupCallback",
    "AsyncCleanupCallback",
    "SyncFunc",
    "AsyncFunc",
    "AsyncCallable",
    "CoroFunc",
    "AnyFunc",
    "Decorator",
    # protocols
    "Resource",
    "ResourceManager",
    "AsyncCloseable",
    "Event",
    "EventHandler",
    "CacheKey",
    "CacheValue",
    "Factory",
    "AsyncFactory",
    "ConfigProtocol",
    # classes
    "Result",
    "Config",
    # helpers
    "call_maybe_async",
    "is_async_callable",
    "ManualClock",
    "publish_module",
    "connect_redis",
    "redis_key",
    "REDIS_SCHEMES",
)

# Reprs, tracebacks and pickles name the public path (mtaio.typing.X), not a private module.
publish_module(globals())
