"""Rate, concurrency and timeout limiters, resource groups, retries and circuit breakers.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``. ``_rate`` holds the token buckets,
``_concurrency`` the permit limiter, ``_limiter`` the combined ``ResourceLimiter``,
``_timeout`` the deadlines, ``_group`` the groups and managers, ``_retry`` and ``_breaker``
the resilience helpers.
"""

import logging as _logging
from importlib.metadata import version as _version

from mtaio.typing import publish_module as _publish_module

from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitBreakerStats as CircuitBreakerStats
from ._breaker import CircuitState as CircuitState
from ._concurrency import ConcurrencyLimiter as ConcurrencyLimiter
from ._concurrency import ConcurrencyStats as ConcurrencyStats
from ._group import ResourceGroup as ResourceGroup
from ._group import ResourceManager as ResourceManager
from ._limiter import ResourceLimiter as ResourceLimiter
from ._limiter import ResourceLimiterStats as ResourceLimiterStats
from ._rate import KeyedRateLimiter as KeyedRateLimiter
from ._rate import KeyedRateLimiterStats as KeyedRateLimiterStats
from ._rate import Limit as Limit
from ._rate import RateLimiter as RateLimiter
from ._rate import RateLimiterStats as RateLimiterStats
from ._retry import Attempt as Attempt
from ._retry import Retry as Retry
from ._retry import is_testing as is_testing
from ._retry import retry as retry
from ._retry import retrying as retrying
from ._retry import set_testing as set_testing
from ._shared_breaker import SharedCircuitBreaker as SharedCircuitBreaker
from ._shared_breaker import SharedCircuitBreakerStats as SharedCircuitBreakerStats
from ._shared_concurrency import SharedConcurrencyLimiter as SharedConcurrencyLimiter
from ._shared_concurrency import SharedConcurrencyStats as SharedConcurrencyStats
from ._shared_rate import SharedKeyedRateLimiter as SharedKeyedRateLimiter
from ._shared_rate import SharedRateLimiter as SharedRateLimiter
from ._shared_rate import SharedRateLimiterStats as SharedRateLimiterStats
from ._store import RedisStore as RedisStore
from ._timeout import TimeoutManager as TimeoutManager
from ._timeout import TimeoutScope as TimeoutScope
from ._timeout import current_deadline as current_deadline

__version__: str = _version("mtaio-resources")

__all__ = (
    # limiters
    "RateLimiter",
    "Limit",
    "KeyedRateLimiter",
    "ConcurrencyLimiter",
    "ResourceLimiter",
    # shared state across processes
    "RedisStore",
    "SharedRateLimiter",
    "SharedKeyedRateLimiter",
    "SharedConcurrencyLimiter",
    "SharedCircuitBreaker",
    # statistics snapshots
    "RateLimiterStats",
    "KeyedRateLimiterStats",
    "ConcurrencyStats",
    "ResourceLimiterStats",
    "CircuitBreakerStats",
    "SharedRateLimiterStats",
    "SharedConcurrencyStats",
    "SharedCircuitBreakerStats",
    # timeouts
    "TimeoutManager",
    "TimeoutScope",
    "current_deadline",
    # groups and managers
    "ResourceGroup",
    "ResourceManager",
    # resilience
    "Retry",
    "retry",
    "retrying",
    "Attempt",
    "set_testing",
    "is_testing",
    "CircuitBreaker",
    "CircuitState",
)

# A library never configures logging; the NullHandler keeps Python's "last resort" handler
# from printing our warnings to stderr when the application configured nothing.
_logging.getLogger("mtaio.resources").addHandler(_logging.NullHandler())

# Reprs, tracebacks and pickles name the public path (mtaio.resources.X), not a private module.
_publish_module(globals())
