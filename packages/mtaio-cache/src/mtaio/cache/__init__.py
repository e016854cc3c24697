"""An asyncio TTL cache with LRU/LFU/FIFO eviction, and a replicated distributed cache.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``.
"""

from importlib.metadata import version as _version

from mtaio.typing import publish_module as _publish_module

from ._cached import CachedFunction as CachedFunction
from ._cached import cached as cached
from ._policies import EvictionPolicy as EvictionPolicy
from ._policies import EvictionReason as EvictionReason
from ._protocol import AsyncCache as AsyncCache
from ._stats import CacheStats as CacheStats
from ._ttl import CacheTransaction as CacheTransaction
from ._ttl import TTLCache as TTLCache
from ._ttl import TTLFIFOCache as TTLFIFOCache
from ._ttl import TTLLFUCache as TTLLFUCache
from ._ttl import TTLLRUCache as TTLLRUCache

# isort: split
# distributed cache (redis-py is imported lazily, by DistributedCache itself)
from ._distributed import CacheDependencyError as CacheDependencyError
from ._distributed import CacheTimeoutError as CacheTimeoutError
from ._distributed import DistributedCache as DistributedCache
from ._distributed import DistributedCacheStats as DistributedCacheStats
from ._distributed_node import NodeStats as NodeStats
from ._layered import LayeredCache as LayeredCache
from ._layered import LayeredCacheStats as LayeredCacheStats
from ._node import CacheNode as CacheNode
from ._node import CacheNodeStats as CacheNodeStats
from ._resp import RespProtocolError as RespProtocolError
from ._serial import CacheSerializationError as CacheSerializationError
from ._serial import JsonSerializer as JsonSerializer
from ._serial import RawSerializer as RawSerializer
from ._serial import Serializer as Serializer
from ._serial import SignedPickleSerializer as SignedPickleSerializer

__version__: str = _version("mtaio-cache")

__all__ = (
    # the protocol every cache implements
    "AsyncCache",
    # local cache
    "TTLCache",
    "TTLLRUCache",
    "TTLLFUCache",
    "TTLFIFOCache",
    "EvictionPolicy",
    "EvictionReason",
    "CacheStats",
    "CacheTransaction",
    "cached",
    "CachedFunction",
    # distributed cache
    "DistributedCache",
    "DistributedCacheStats",
    "NodeStats",
    "LayeredCache",
    "LayeredCacheStats",
    "CacheNode",
    "CacheNodeStats",
    "Serializer",
    "JsonSerializer",
    "RawSerializer",
    "SignedPickleSerializer",
    "CacheSerializationError",
    "CacheTimeoutError",
    "CacheDependencyError",
    "RespProtocolError",
)

# Reprs, tracebacks and pickles name the public path (mtaio.cache.X), not a private module.
_publish_module(globals())
