"""Every public constructor and method refuses a bad value at the call, naming the argument.

Each case says which values it accepts (a predicate); every other value must raise
ConfigurationError (ConfigurationTypeError for a wrong type) whose message names the
argument, and the object must still work afterwards. The ten values of the issue are tried
on every case; hypothesis adds floats, integers, strings and the like.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError
from mtaio.resources import (
    CircuitBreaker,
    ConcurrencyLimiter,
    KeyedRateLimiter,
    Limit,
    RateLimiter,
    RedisStore,
    ResourceLimiter,
    Retry,
    TimeoutManager,
    TimeoutScope,
    set_testing,
)
from mtaio.testing import (
    BAD_VALUES,
    is_real,
    non_negative,
    optional,
    positive,
    positive_int,
)


def pos_finite(v: object) -> bool:
    return is_real(v) and 0 < v < math.inf  # type: ignore[operator]


def non_neg_finite(v: object) -> bool:
    return non_negative(v) and v < math.inf  # type: ignore[operator]


def nothing(v: object) -> bool:
    return False


def only(*accepted: object) -> Callable[[object], bool]:
    return lambda v: any(v is a or (type(v) is type(a) and v == a) for a in accepted)


def tokens_up_to(cap: float) -> Callable[[object], bool]:
    return lambda v: pos_finite(v) and v <= cap  # type: ignore[operator]


URL = "redis://127.0.0.1:1/0"  # never connected to: constructing a store is offline


def a_name(v: object) -> bool:
    return isinstance(v, str) and bool(v) and "{" not in v and "}" not in v


async def _ok() -> int:
    return 1


@dataclass
class Case:
    """``call(obj, value)`` on ``make()``; then ``use(obj)`` must still work."""

    argument: str
    accepts: Callable[[object], bool]
    call: Callable[[Any, Any], object]
    make: Callable[[], Any] = lambda: None
    use: Callable[[Any], object] = lambda obj: None


def _use_rate(limiter: RateLimiter) -> None:
    assert limiter.try_acquire(0.5)


async def _use_permits(limiter: ConcurrencyLimiter) -> None:
    await limiter.acquire()
    limiter.release()


async def _use_both(limiter: ResourceLimiter) -> None:
    await limiter.acquire(0.5)
    limiter.release()


async def _use_manager(tm: TimeoutManager) -> None:
    assert await tm.run(_ok(), 1) == 1


CASES: list[Case] = [
    # constructors
    Case("rate", pos_finite, lambda _, v: RateLimiter(v)),
    Case("burst", optional(pos_finite), lambda _, v: RateLimiter(1, v)),
    Case("per", pos_finite, lambda _, v: RateLimiter(1, per=v)),
    Case("limits[0].rate", pos_finite, lambda _, v: RateLimiter(1, limits=[Limit(v)])),
    Case("limits[0].per", pos_finite, lambda _, v: RateLimiter(1, limits=[Limit(1, v)])),
    Case(
        "limits[0].burst",
        optional(pos_finite),
        lambda _, v: RateLimiter(1, limits=[Limit(1, 1, v)]),
    ),
    Case("limits", lambda v: v == [], lambda _, v: RateLimiter(1, limits=v)),
    Case("oversize", nothing, lambda _, v: RateLimiter(1, oversize=v)),
    Case("clock", only(None), lambda _, v: RateLimiter(1, clock=v)),
    Case("rate", pos_finite, lambda _, v: KeyedRateLimiter(v)),
    Case("max_keys", positive_int, lambda _, v: KeyedRateLimiter(1, max_keys=v)),
    Case("limit", positive_int, lambda _, v: ConcurrencyLimiter(v)),
    Case("rate", optional(pos_finite), lambda _, v: ResourceLimiter(rate=v)),
    Case("concurrency", optional(positive_int), lambda _, v: ResourceLimiter(concurrency=v)),
    Case("burst", optional(pos_finite), lambda _, v: ResourceLimiter(rate=1, burst=v)),
    Case("timeout", optional(non_negative), lambda _, v: ResourceLimiter(rate=1, timeout=v)),
    Case("default_timeout", optional(non_negative), lambda _, v: TimeoutManager(v)),
    Case("seconds", optional(non_negative), lambda _, v: TimeoutScope(v)),
    Case("attempts", positive_int, lambda _, v: Retry(v)),
    Case("delay", non_neg_finite, lambda _, v: Retry(delay=v)),
    Case("factor", pos_finite, lambda _, v: Retry(factor=v)),
    Case("max_delay", non_negative, lambda _, v: Retry(max_delay=v)),
    Case("jitter", non_neg_finite, lambda _, v: Retry(jitter=v)),
    Case("timeout", optional(non_negative), lambda _, v: Retry(timeout=v)),
    Case("attempt_timeout", optional(positive), lambda _, v: Retry(attempt_timeout=v)),
    Case("retry_on", nothing, lambda _, v: Retry(retry_on=v)),
    Case("retry_if_result", only(None), lambda _, v: Retry(retry_if_result=v)),
    Case("reraise", only(True, False), lambda _, v: Retry(reraise=v)),
    Case("on_retry", only(None), lambda _, v: Retry(on_retry=v)),
    Case("sleep", only(None), lambda _, v: Retry(sleep=v)),
    Case("rng", only(None), lambda _, v: Retry(rng=v)),
    Case("clock", only(None), lambda _, v: Retry(clock=v)),
    Case("failure_threshold", positive_int, lambda _, v: CircuitBreaker(v)),
    Case("reset_timeout", non_negative, lambda _, v: CircuitBreaker(reset_timeout=v)),
    Case("half_open_max_calls", positive_int, lambda _, v: CircuitBreaker(half_open_max_calls=v)),
    Case("failure_on", nothing, lambda _, v: CircuitBreaker(failure_on=v)),
    Case(
        "name",
        optional(lambda v: isinstance(v, str) and bool(v)),
        lambda _, v: CircuitBreaker(name=v),
    ),
    Case("testing", only(True, False), lambda _, v: set_testing(v)),
    # the shared store's arguments (constructing a store does not connect)
    Case("url_or_client", nothing, lambda _, v: RedisStore(v)),
    Case("timeout", pos_finite, lambda _, v: RedisStore(URL, timeout=v)),
    Case(
        "prefix", lambda v: isinstance(v, str) and bool(v), lambda _, v: RedisStore(URL, prefix=v)
    ),
    Case("store", only(None), lambda _, v: RateLimiter(1, store=v, name="x")),
    Case("name", a_name, lambda _, v: RateLimiter(1, store=RedisStore(URL), name=v)),
    Case("name", a_name, lambda _, v: KeyedRateLimiter(1, store=RedisStore(URL), name=v)),
    Case("name", a_name, lambda _, v: ConcurrencyLimiter(1, store=RedisStore(URL), name=v)),
    Case("name", a_name, lambda _, v: CircuitBreaker(store=RedisStore(URL), name=v)),
    Case(
        "on_store_error",
        nothing,
        lambda _, v: RateLimiter(1, store=RedisStore(URL), name="x", on_store_error=v),
    ),
    Case(
        "expected_replicas",
        positive_int,
        lambda _, v: ConcurrencyLimiter(1, store=RedisStore(URL), name="x", expected_replicas=v),
    ),
    Case(
        "lease",
        lambda v: pos_finite(v) and v >= 0.03,  # type: ignore[operator]
        lambda _, v: ConcurrencyLimiter(1, store=RedisStore(URL), name="x", lease=v),
    ),
    # methods: the object must still work after a refusal
    Case(
        "tokens",
        tokens_up_to(5),
        lambda o, v: o.try_acquire(v),
        lambda: RateLimiter(10, 5),
        _use_rate,
    ),
    Case(
        "tokens", tokens_up_to(5), lambda o, v: o.acquire(v), lambda: RateLimiter(10, 5), _use_rate
    ),
    Case(
        "tokens",
        tokens_up_to(1e300),
        lambda o, v: o.acquire(v),
        lambda: RateLimiter(10, 5, oversize="borrow"),
        lambda o: None,  # an accepted huge request leaves a debt; refusals leave it whole
    ),
    Case(
        "timeout",
        optional(non_negative),
        lambda o, v: o.acquire(1, v),
        lambda: RateLimiter(10, 5),
        _use_rate,
    ),
    Case(
        "tokens",
        tokens_up_to(5),
        lambda o, v: o.limit(tokens=v),
        lambda: RateLimiter(10, 5),
        _use_rate,
    ),
    Case(
        "timeout",
        optional(non_negative),
        lambda o, v: o.limit(timeout=v),
        lambda: RateLimiter(10, 5),
        _use_rate,
    ),
    Case(
        "tokens",
        tokens_up_to(5),
        lambda o, v: o.try_acquire("k", v),
        lambda: KeyedRateLimiter(10, 5),
        lambda o: o.try_acquire("k", 0.5),
    ),
    Case(
        "timeout",
        optional(non_negative),
        lambda o, v: o.acquire(timeout=v),
        lambda: ConcurrencyLimiter(2),
        lambda o: None,
    ),
    Case(
        "limit",
        positive_int,
        lambda o, v: setattr(o, "limit", v),
        lambda: ConcurrencyLimiter(2),
        _use_permits,
    ),
    Case(
        "timeout",
        optional(non_negative),
        lambda o, v: o.limit_calls(timeout=v),
        lambda: ConcurrencyLimiter(2),
        _use_permits,
    ),
    Case(
        "tokens",
        tokens_up_to(5),
        lambda o, v: o.acquire(v),
        lambda: ResourceLimiter(rate=10, burst=5, concurrency=2),
        _use_both,
    ),
    Case(
        "seconds", optional(non_negative), lambda o, v: o.timeout(v), TimeoutManager, _use_manager
    ),
    Case(
        "seconds",
        optional(non_negative),
        lambda o, v: o.move_on(seconds=v),
        TimeoutManager,
        _use_manager,
    ),
    Case(
        "timeout",
        optional(non_negative),
        lambda o, v: o.run(_ok(), v),
        TimeoutManager,
        _use_manager,
    ),
    Case(
        "timeouts[0]",
        non_negative,
        lambda o, v: o.cascade(_ok, [v]),
        TimeoutManager,
        _use_manager,
    ),
    Case(
        "timeouts",
        lambda v: isinstance(v, list) and bool(v) and all(non_negative(t) for t in v),
        lambda o, v: o.cascade(_ok, v),
        TimeoutManager,
        _use_manager,
    ),
]


@pytest.fixture(autouse=True)
def _restore_testing() -> Iterator[None]:
    previous = set_testing(False)
    yield
    set_testing(previous)


async def _settle(result: object) -> None:
    if isinstance(result, Awaitable):
        with contextlib.suppress(TimeoutError):  # an accepted long wait: not the subject
            await asyncio.wait_for(result, 0.5)


def _check(case: Case, value: object) -> None:
    async def run() -> None:
        obj = case.make()
        try:
            await _settle(case.call(obj, value))
        except ConfigurationError as error:
            assert not case.accepts(value), f"{case.argument}={value!r} refused: {error}"
            assert case.argument in str(error), f"{error} does not name {case.argument}"
            choices = (
                "oversize",
                "name",
                "jitter",
                "testing",
                "reraise",
                "on_store_error",
                "url_or_client",
            )
            if isinstance(value, str | bool) and case.argument not in choices:
                # a wrong type is a ConfigurationTypeError
                assert isinstance(error, ConfigurationTypeError), repr(error)
            await _settle(case.use(obj))
        else:
            assert case.accepts(value), f"{case.argument}={value!r} accepted"
        finally:
            set_testing(False)

    asyncio.run(run())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.argument)
def test_the_ten_values_on_every_argument(case: Case) -> None:
    for value in BAD_VALUES:
        _check(case, value)


values = (
    st.sampled_from(BAD_VALUES)
    | st.floats()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.text(max_size=3)
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
)


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from(CASES), value=values)
def test_any_value_is_accepted_or_refused_by_name(case: Case, value: object) -> None:
    _check(case, value)
