"""Type-only checks of the public API: mypy runs them, pytest does not collect them."""

from typing import assert_type

import mtaio.typing
from mtaio.resources import (
    CircuitBreaker,
    CircuitBreakerStats,
    CircuitState,
    ConcurrencyLimiter,
    ConcurrencyStats,
    KeyedRateLimiter,
    KeyedRateLimiterStats,
    RateLimiter,
    RateLimiterStats,
    ResourceLimiter,
    ResourceLimiterStats,
    ResourceManager,
    Retry,
    TimeoutManager,
    retry,
)

limiter = RateLimiter(10)
concurrency = ConcurrencyLimiter(2)
resource_limiter = ResourceLimiter(rate=5, concurrency=2)
breaker = CircuitBreaker()
policy = Retry()


@limiter.limit
async def bare(x: int, y: str = "") -> float:
    return 1.0


@limiter.limit(tokens=2)
async def with_args(x: int) -> str:
    return ""


@concurrency
async def permitted(x: int) -> bytes:
    return b""


@resource_limiter.limit
async def limited(x: int) -> int:
    return x


@breaker
async def guarded(x: int) -> list[int]:
    return [x]


@retry
async def retried(x: int) -> int:
    return x


@retry(attempts=5, retry_on=OSError)
async def retried_args(x: int) -> int:
    return x


@policy
async def by_policy(x: int) -> dict[str, int]:
    return {}


async def main() -> None:
    assert_type(await bare(1, y="a"), float)
    assert_type(await with_args(1), str)
    assert_type(await permitted(1), bytes)
    assert_type(await limited(1), int)
    assert_type(await guarded(1), list[int])
    assert_type(await retried(1), int)
    assert_type(await retried_args(1), int)
    assert_type(await by_policy(1), dict[str, int])
    assert_type(await breaker.call(guarded, 1), list[int])
    assert_type(await policy.call(retried, 1), int)
    assert_type(await TimeoutManager().run(retried(1)), int)
    assert_type(await TimeoutManager().cascade(lambda: retried(1), [1, 2]), int)
    keyed: KeyedRateLimiter[str] = KeyedRateLimiter(1)
    await keyed.acquire("user")
    manager: mtaio.typing.ResourceManager = ResourceManager()
    assert manager is not None


def stats_types() -> None:
    assert_type(limiter.stats(), RateLimiterStats)
    assert_type(limiter.stats().acquired, int)
    assert_type(limiter.stats().available, float)
    assert_type(keyed_int.stats(), KeyedRateLimiterStats)
    assert_type(concurrency.stats(), ConcurrencyStats)
    assert_type(resource_limiter.stats(), ResourceLimiterStats)
    assert_type(resource_limiter.stats().rate, RateLimiterStats | None)
    assert_type(resource_limiter.stats().concurrency, ConcurrencyStats | None)
    assert_type(breaker.stats(), CircuitBreakerStats)
    assert_type(breaker.stats().state, CircuitState)
    limiter.stats().acquired = 1  # type: ignore[misc]


async def mistakes() -> None:
    await bare("not an int")  # type: ignore[arg-type]
    await keyed_int.acquire("str")  # type: ignore[arg-type]


keyed_int: KeyedRateLimiter[int] = KeyedRateLimiter(1)


# -- the shared store: the constructor's overloads give the shared types ------------------

from mtaio.resources import (  # noqa: E402
    Attempt,
    RedisStore,
    SharedCircuitBreaker,
    SharedConcurrencyLimiter,
    SharedConcurrencyStats,
    SharedKeyedRateLimiter,
    SharedRateLimiter,
    SharedRateLimiterStats,
    retrying,
)

store = RedisStore("redis://localhost:6379/0", prefix="app")
assert_type(RateLimiter(200, burst=20, store=store, name="payments"), SharedRateLimiter)
assert_type(RateLimiter(200, burst=20), RateLimiter)
assert_type(KeyedRateLimiter[str](10, store=store, name="users"), SharedKeyedRateLimiter[str])
assert_type(ConcurrencyLimiter(10, store=store, name="jobs"), SharedConcurrencyLimiter)
assert_type(CircuitBreaker(store=store, name="api"), SharedCircuitBreaker)


async def shared_use() -> None:
    shared = RateLimiter(200, store=store, name="payments")
    assert_type(await shared.try_acquire(), bool)
    assert_type(shared.stats(), SharedRateLimiterStats)
    permits = ConcurrencyLimiter(10, store=store, name="jobs")
    assert_type(await permits.try_acquire(), bool)
    await permits.release()
    assert_type(permits.stats(), SharedConcurrencyStats)
    local = RateLimiter(5)
    assert_type(local.try_acquire(), bool)
    async for attempt in retrying(attempts=3):
        assert_type(attempt, Attempt)
        with attempt:
            pass
