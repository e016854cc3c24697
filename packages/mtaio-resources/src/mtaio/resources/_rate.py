"""Token-bucket rate limiters: :class:`RateLimiter` (one or several rates) and a keyed one.

How waiting works: waiters queue in FIFO order and only the head has a timer, set for the
moment the buckets will hold its tokens. When it fires, the head is granted (and any waiter
behind it that the buckets can already serve), and one new timer is set for the next head.
So N waiting tasks cost one timer, nobody polls, and nobody wakes up only to sleep again.
A waiter that is cancelled or times out before being served has taken nothing; one that is
cancelled after being served gives its tokens back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    NamedTuple,
    NoReturn,
    ParamSpec,
    TypeVar,
    final,
    overload,
)

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    ResourceTimeoutError,
    require_callable,
    require_choice,
    require_positive_int,
)
from mtaio.typing import Clock

from ._checks import require_finite_positive, require_timeout
from ._decorate import guard
from ._store import FailurePolicy, RedisStore, check_name

if TYPE_CHECKING:
    from ._shared_rate import SharedKeyedRateLimiter, SharedRateLimiter

__all__ = (
    "KeyedRateLimiter",
    "KeyedRateLimiterStats",
    "Limit",
    "RateLimiter",
    "RateLimiterStats",
)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_K = TypeVar("_K", bound=Hashable)

logger = logging.getLogger("mtaio.resources")

# A timer may fire a hair early (asyncio runs handles due within the clock resolution) and
# float arithmetic leaves crumbs: a deficit this small (seconds) counts as none, rather than
# arming a 1 ns timer. It changes the achieved rate by far less than a part per million.
_EPSILON = 1e-7


@final
@dataclass(frozen=True, slots=True)
class RateLimiterStats:
    """A snapshot of a :class:`RateLimiter`'s figures, from ``stats()``.

    Attributes:
        rate: Tokens added per second (of the first rate, when there are several).
        burst: The bucket's capacity in tokens (of the first rate).
        available: Tokens that could be taken at the time of the snapshot (the smallest
            level over all rates).
        waiting: Tasks waiting in ``acquire``.
        acquired: Requests granted so far.
    """

    rate: float
    burst: float
    available: float
    waiting: int
    acquired: int


@final
@dataclass(frozen=True, slots=True)
class KeyedRateLimiterStats:
    """A snapshot of a :class:`KeyedRateLimiter`'s figures, from ``stats()``.

    Attributes:
        keys: Buckets held at the time of the snapshot.
        max_keys: The most buckets kept at once.
        waiting: Tasks waiting in ``acquire``, summed over the keys.
        acquired: Requests granted so far, summed over the keys held.
    """

    keys: int
    max_keys: int
    waiting: int
    acquired: int


class Limit(NamedTuple):
    """One rate for :class:`RateLimiter`: ``rate`` tokens every ``per`` seconds.

    Attributes:
        rate: Tokens added every ``per`` seconds.
        per: The period in seconds (``60`` for "per minute").
        burst: The bucket's capacity, the most tokens available at once. ``None`` means a
            tenth of ``rate``, at least one token.
    """

    rate: float
    per: float = 1.0
    burst: float | None = None


def _default_burst(rate: float) -> float:
    # A tenth of a period's worth: smooth pacing that still absorbs event-loop latency
    # (a late timer refills the bucket instead of losing tokens), and at most 1.1 x rate
    # in any window of one period.
    return max(1.0, rate / 10)


class _Bucket:
    """One rate of a multi-rate limiter (the first rate lives in the limiter itself)."""

    __slots__ = ("capacity", "level", "per_second")

    def __init__(self, per_second: float, capacity: float) -> None:
        self.per_second = per_second
        self.capacity = capacity
        self.level = capacity


class _Waiter:
    __slots__ = ("future", "tokens")

    def __init__(self, future: asyncio.Future[bool], tokens: float) -> None:
        self.future = future
        self.tokens = tokens


def _check_limit(limit: Limit, prefix: str) -> tuple[float, float]:
    rate = require_finite_positive(f"{prefix}rate", limit.rate)
    per = require_finite_positive(f"{prefix}per", limit.per)
    burst = limit.burst
    burst = (
        _default_burst(rate) if burst is None else require_finite_positive(f"{prefix}burst", burst)
    )
    return rate / per, float(burst)


def _as_limit(lim: object, i: int) -> Limit:
    if isinstance(lim, Limit):
        return lim
    try:
        return Limit(*lim)  # type: ignore[misc]
    except TypeError:
        raise ConfigurationTypeError(
            f"limits[{i}] must be a Limit(rate, per, burst) or such a tuple, got {lim!r}"
        ) from None


# The largest request a borrowing bucket takes: finite, so that tokens=inf is refused
# instead of leaving the bucket in an infinite debt for good.
_BORROW_MAX = 1e300


class RateLimiter:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` available at once.

    ``acquire(tokens)`` returns at once while the bucket holds the tokens and otherwise
    waits its turn: waiters are served first come, first served, with a single timer for the
    head of the queue. The bucket starts full.

    Several rates can be enforced together (say 10 per second and 500 per minute): a request
    is granted only when every bucket holds its tokens, and then takes them from all of them.

    Example:
        >>> limiter = RateLimiter(10, burst=5)
        >>> limiter.try_acquire(5)
        True
        >>> limiter.try_acquire()
        False

    Args:
        rate: Tokens added per ``per`` seconds.
        burst: The capacity: the most tokens available at once, and so the largest request.
            ``None`` means a tenth of ``rate``, at least one token; then no window of one
            period ever sees more than ``1.1 * rate`` tokens taken.
        per: The period of ``rate`` in seconds.
        limits: Further rates enforced atomically with the first one.
        oversize: What a request larger than ``burst`` does: ``"error"`` raises
            :class:`~mtaio.exceptions.ConfigurationError`; ``"borrow"`` waits for a full
            bucket and then takes the tokens, leaving the bucket in debt so the rate holds.
        clock: A monotonic clock in seconds. ``None`` uses the running loop's clock, which
            virtual-time test tools (looptime) control.
        store: ``None`` (the default) keeps the bucket in this process; a
            :class:`~mtaio.resources.RedisStore` shares it with every process that builds a
            limiter of the same ``name`` on the same store. Then ``try_acquire`` is awaited,
            each grant is one round trip to a server-side script (GCRA on the server's
            clock), a waiter sleeps the wait the server computed, and ``stats()`` adds the
            round trips and store errors.
        name: What identifies the shared state; required with a store (checked, and
            otherwise unused, without one).
        on_store_error: With a store, what happens when it cannot answer within its
            timeout: ``"fail_closed"`` (the default) raises
            :class:`~mtaio.exceptions.ResourceLimitError`; ``"fail_open"`` serves the
            request from a local limiter at ``rate / expected_replicas`` (and a burst
            shared the same way) until the store answers again.
        expected_replicas: How many processes share the limit, for the fail-open share.

    Raises:
        ConfigurationError: If a rate, period or burst is not a finite positive number, or
            ``name`` is missing with a store.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``store``, ``name``, ``on_store_error``, ``expected_replicas``.
    """

    __slots__ = (
        "_acquired",
        "_capacity",
        "_clock",
        "_extra",
        "_last",
        "_level",
        "_loop",
        "_max_tokens",
        "_per_second",
        "_time",
        "_timer",
        "_waiters",
        "_waiting",
    )

    # Construction is in __new__ (there is no __init__): given a store, it returns the shared
    # limiter, a subclass whose methods talk to the store, and the type checker sees that
    # type through the overloads. The local limiter pays nothing for the option.
    @overload
    def __new__(
        cls,
        rate: float,
        burst: float | None = None,
        *,
        per: float = 1.0,
        limits: Iterable[Limit] = (),
        oversize: Literal["error", "borrow"] = "error",
        clock: Clock | None = None,
        store: None = None,
        name: str | None = None,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> RateLimiter: ...

    @overload
    def __new__(
        cls,
        rate: float,
        burst: float | None = None,
        *,
        per: float = 1.0,
        limits: Iterable[Limit] = (),
        oversize: Literal["error", "borrow"] = "error",
        clock: Clock | None = None,
        store: RedisStore,
        name: str,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> SharedRateLimiter: ...

    def __new__(
        cls,
        rate: float,
        burst: float | None = None,
        *,
        per: float = 1.0,
        limits: Iterable[Limit] = (),
        oversize: Literal["error", "borrow"] = "error",
        clock: Clock | None = None,
        store: RedisStore | None = None,
        name: str | None = None,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> RateLimiter:
        if store is not None:
            from ._shared_rate import SharedRateLimiter

            return SharedRateLimiter._create(
                rate,
                burst,
                per,
                limits,
                oversize,
                clock,
                store,
                name,
                on_store_error,
                expected_replicas,
            )
        check_name(name, None)
        self = object.__new__(cls)
        self._setup(rate, burst, per, limits, oversize, clock)
        return self

    def _setup(
        self,
        rate: float,
        burst: float | None,
        per: float,
        limits: Iterable[Limit],
        oversize: str,
        clock: Clock | None,
    ) -> None:
        self._per_second, self._capacity = _check_limit(Limit(rate, per, burst), "")
        given: object = limits  # checked at run time, whatever the annotation says
        if isinstance(given, str | bytes) or not isinstance(given, Iterable):
            raise ConfigurationTypeError(f"limits must be an iterable of Limit, got {limits!r}")
        self._extra: tuple[_Bucket, ...] = tuple(
            _Bucket(*_check_limit(_as_limit(lim, i), f"limits[{i}]."))
            for i, lim in enumerate(limits)
        )
        require_choice("oversize", oversize, ("error", "borrow"))
        if clock is not None:
            require_callable("clock", clock)
        caps = [self._capacity, *(b.capacity for b in self._extra)]
        self._max_tokens = _BORROW_MAX if oversize == "borrow" else min(caps)
        self._level = self._capacity
        self._clock = clock
        # Until the first use tells which loop (and so which clock) applies, _time binds it.
        self._time: Clock = clock if clock is not None else self._first_time
        self._loop: asyncio.AbstractEventLoop | None = None
        # -inf: the first refill fills the bucket whatever the clock's origin
        self._last = -math.inf
        self._waiters: deque[_Waiter] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._waiting = 0
        self._acquired = 0

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self.rate!r}/s, burst={self._capacity!r}, waiting={self._waiting})"
        )

    @property
    def rate(self) -> float:
        """Tokens added per second by the first rate."""
        return self._per_second

    @property
    def burst(self) -> float:
        """The capacity of the first rate's bucket."""
        return self._capacity

    # -- clock ---------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Adopt ``loop``'s clock (called when used from a new loop)."""
        if self._loop is not None and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = loop
        if self._clock is None:
            # asyncio's own loop.time() is time.monotonic(); calling that directly saves a
            # method call on every acquire. Any other clock (looptime's virtual one, uvloop)
            # is used as is.
            own = type(loop).time is asyncio.BaseEventLoop.time
            clock = time.monotonic if own else loop.time
            if self._last != -math.inf and clock is not self._time:
                self._last = clock()  # a new clock: keep the level, restart the refill
            self._time = clock

    def _first_time(self) -> float:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return time.monotonic()
        self._bind(loop)
        return self._time()

    def _now(self) -> float:
        if self._clock is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return time.monotonic()
            if loop is not self._loop:
                self._bind(loop)
        return self._time()

    def _refill(self, now: float) -> None:
        last = self._last
        self._last = now
        elapsed = now - last
        if elapsed <= 0:
            return
        level = self._level + elapsed * self._per_second
        self._level = self._capacity if level > self._capacity else level
        for b in self._extra:
            level = b.level + elapsed * b.per_second
            b.level = b.capacity if level > b.capacity else level

    def _deficit(self, tokens: float) -> float:
        """Seconds until every bucket can serve ``tokens`` (<= 0: now)."""
        need = tokens if tokens < self._capacity else self._capacity
        wait = (need - self._level) / self._per_second
        for b in self._extra:
            need = tokens if tokens < b.capacity else b.capacity
            w = (need - b.level) / b.per_second
            if w > wait:
                wait = w
        return wait

    def _take(self, tokens: float) -> None:
        self._level -= tokens
        for b in self._extra:
            b.level -= tokens
        self._acquired += 1

    def _give_back(self, tokens: float) -> None:
        self._refill(self._now())
        self._level = min(self._capacity, self._level + tokens)
        for b in self._extra:
            b.level = min(b.capacity, b.level + tokens)
        self._acquired -= 1

    def _validate(self, tokens: float) -> None:
        try:
            if tokens is not True and 0.0 < tokens <= self._max_tokens:  # type: ignore[redundant-expr]
                return
        except TypeError:
            pass
        self._check_tokens(tokens)

    def _check_tokens(self, tokens: object) -> NoReturn:
        if isinstance(tokens, bool) or not isinstance(tokens, int | float):
            raise ConfigurationTypeError(f"tokens must be a positive number, got {tokens!r}")
        if not tokens > 0:
            raise ConfigurationError(f"tokens must be a positive number (> 0), got {tokens!r}")
        if math.isinf(tokens):
            raise ConfigurationError(f"tokens must be a finite number, got {tokens!r}")
        raise ConfigurationError(
            f"tokens={tokens!r} exceeds the bucket capacity (burst={self._max_tokens!r}): "
            "such a request could never be granted"
        )

    # -- acquiring -----------------------------------------------------------------------

    async def acquire(self, tokens: float = 1.0, timeout: float | None = None) -> None:  # noqa: ASYNC109 - a wait bound, as in asyncio.Queue-style APIs
        """Wait until ``tokens`` are available, then take them.

        Args:
            tokens: How many tokens (may be fractional).
            timeout: Seconds to wait at most; ``None`` waits as long as needed.

        Raises:
            ConfigurationError: If ``tokens`` is not positive or exceeds the capacity, or
                ``timeout`` is negative.
            ResourceTimeoutError: If ``timeout`` passes first (also a ``TimeoutError`` and
                a ``ResourceLimitError``); nothing is taken then.
        """
        # `tokens is True`: the one bool that passes the range test; an identity test is free.
        try:
            if tokens is True or not 0.0 < tokens <= self._max_tokens:  # type: ignore[redundant-expr]
                self._check_tokens(tokens)
        except TypeError:
            self._check_tokens(tokens)
        if timeout is None and not self._waiters and not self._extra:
            # The fast path: a hand-written bucket's arithmetic, inlined. On the first call
            # _last is -inf, so the elapsed time is inf and the bucket fills to capacity.
            now = self._time()
            level = self._level + (now - self._last) * self._per_second
            self._last = now
            if level > self._capacity:
                level = self._capacity
            if level >= tokens:
                self._level = level - tokens
                self._acquired += 1
                return
            self._level = level
        await self._wait(tokens, timeout)

    async def _wait(self, tokens: float, patience: float | None) -> None:
        timeout = require_timeout("timeout", patience)
        if timeout == math.inf:
            timeout = None
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if not self._waiters:
            self._refill(self._time())
            if self._deficit(tokens) <= 0:
                self._take(tokens)
                return
        future: asyncio.Future[bool] = loop.create_future()
        waiter = _Waiter(future, tokens)
        self._waiters.append(waiter)
        self._waiting += 1
        handle = None
        try:
            if self._waiters[0] is waiter:
                self._wake()
            if timeout is not None and not future.done():
                handle = loop.call_later(timeout, _expire, future)
            try:
                granted = await future
            except BaseException:
                if future.done() and not future.cancelled() and future.result():
                    # served, then cancelled before it could run: the tokens go back
                    self._give_back(tokens)
                self._wake()
                raise
            if not granted:
                self._wake()
                raise ResourceTimeoutError(
                    f"rate limiter: {tokens!r} token(s) not available within {timeout!r} s",
                    timeout=timeout,
                )
        finally:
            self._waiting -= 1
            if handle is not None:
                handle.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    def _wake(self) -> None:
        """Serve the waiters the buckets can serve now; arm one timer for the next head."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        if not waiters:
            return
        self._refill(self._time())
        while waiters:
            head = waiters[0]
            future = head.future
            if future.done():  # cancelled or timed out: it holds nothing
                waiters.popleft()
                continue
            deficit = self._deficit(head.tokens)
            if deficit > _EPSILON:
                assert self._loop is not None
                self._timer = self._loop.call_later(deficit, self._on_timer)
                return
            waiters.popleft()
            self._take(head.tokens)
            future.set_result(True)

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if they are available now, without waiting.

        Waiting tasks keep their turn: while any task waits, this returns ``False``.

        Args:
            tokens: How many tokens.

        Returns:
            Whether the tokens were taken.

        Raises:
            ConfigurationError: If ``tokens`` is not positive or exceeds the capacity.
        """
        # `tokens is True`: the one bool that passes the range test; an identity test is free.
        try:
            if tokens is True or not 0.0 < tokens <= self._max_tokens:  # type: ignore[redundant-expr]
                self._check_tokens(tokens)
        except TypeError:
            self._check_tokens(tokens)
        if self._waiting:
            return False
        if self._extra or tokens > self._capacity:
            self._refill(self._time())
            if self._deficit(tokens) > 0:
                return False
            self._take(tokens)
            return True
        now = self._time()
        level = self._level + (now - self._last) * self._per_second
        self._last = now
        if level > self._capacity:
            level = self._capacity
        if level >= tokens:
            self._level = level - tokens
            self._acquired += 1
            return True
        self._level = level
        return False

    def available(self) -> float:
        """The tokens that could be taken now (the smallest level over all rates)."""
        self._refill(self._now())
        return min([self._level, *(b.level for b in self._extra)])

    def stats(self) -> RateLimiterStats:
        """Counts to graph.

        Returns:
            A :class:`RateLimiterStats` snapshot: ``rate`` (tokens per second), ``burst``,
            ``available`` tokens, ``waiting`` tasks and ``acquired`` (requests granted so far).
        """
        return RateLimiterStats(
            rate=self._per_second,
            burst=self._capacity,
            available=self.available(),
            waiting=self._waiting,
            acquired=self._acquired,
        )

    # -- sugar ---------------------------------------------------------------------------

    async def __aenter__(self) -> RateLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @overload
    def limit(
        self, func: Callable[_P, Awaitable[_R]], /
    ) -> Callable[_P, Coroutine[Any, Any, _R]]: ...

    @overload
    def limit(
        self, *, tokens: float = 1.0, timeout: float | None = None
    ) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Coroutine[Any, Any, _R]]]: ...

    def limit(
        self,
        func: Callable[..., Awaitable[Any]] | None = None,
        *,
        tokens: float = 1.0,
        timeout: float | None = None,
    ) -> Any:
        """Decorate a coroutine function so each call first acquires ``tokens``.

        Use it bare (``@limiter.limit``) or with arguments (``@limiter.limit(tokens=2)``).

        Args:
            func: The coroutine function, when used bare.
            tokens: Tokens per call.
            timeout: Seconds each call waits at most for its tokens.

        Returns:
            The wrapped function, or a decorator when called with arguments only.
        """
        self._validate(tokens)
        require_timeout("timeout", timeout)

        def acquire() -> Awaitable[None]:
            return self.acquire(tokens, timeout)

        def decorate(
            fn: Callable[_P, Awaitable[_R]],
        ) -> Callable[_P, Coroutine[Any, Any, _R]]:
            return guard(fn, acquire, None, "RateLimiter.limit")

        return decorate if func is None else decorate(func)


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class KeyedRateLimiter(Generic[_K]):
    """One token bucket per key (per user, per host), with a bound on the number of keys.

    Buckets are created on first use. When ``max_keys`` are held, the least recently used
    bucket nobody waits on is dropped; a dropped key starts again with a full bucket, so keep
    the bound above the number of keys active within ``burst / rate`` seconds.

    Args:
        rate: Tokens per ``per`` seconds for every key.
        burst: Capacity of every bucket (see :class:`RateLimiter`).
        per: The period of ``rate`` in seconds.
        limits: Further rates enforced for every key.
        max_keys: The most buckets kept at once (with a store: the most keys whose
            script arguments this process keeps at hand; the buckets live in the store and
            expire there when idle).
        clock: A monotonic clock; ``None`` uses the running loop's.
        store: A :class:`~mtaio.resources.RedisStore` to share every key's bucket with the
            other processes (see :class:`RateLimiter`); keys must then be ``str``,
            ``bytes`` or ``int``.
        name: What identifies the shared state; required with a store (checked, and
            otherwise unused, without one).
        on_store_error: ``"fail_closed"`` or ``"fail_open"`` (see :class:`RateLimiter`).
        expected_replicas: The processes sharing the limit, for the fail-open share.

    Raises:
        ConfigurationError: On a non-positive rate, burst, period or ``max_keys``.

    .. versionadded:: 0.1
    """

    __slots__ = ("_buckets", "_factory", "_max_keys")

    @overload
    def __new__(
        cls,
        rate: float,
        burst: float | None = None,
        *,
        per: float = 1.0,
        limits: Iterable[Limit] = (),
        max_keys: int = 10_000,
        clock: Clock | None = None,
        store: None = None,
        name: str | None = None,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> KeyedRateLimiter[_K]: ...

    @overload
    def __new__(
        cls,
        rate: float,
        burst: float | None = None,
        *,
        per: float = 1.0,
        limits: Iterable[Limit] = (),
        max_keys: int = 10_000,
        clock: Clock | None = None,
        store: RedisStore,
        name: str,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> SharedKeyedRateLimiter[_K]: ...

    def __new__(
        cls,
        rate: float,
        burst: float | None = None,
        *,
        per: float = 1.0,
        limits: Iterable[Limit] = (),
        max_keys: int = 10_000,
        clock: Clock | None = None,
        store: RedisStore | None = None,
        name: str | None = None,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> KeyedRateLimiter[_K]:
        given: object = limits
        if isinstance(given, str | bytes) or not isinstance(given, Iterable):
            raise ConfigurationTypeError(f"limits must be an iterable of Limit, got {limits!r}")
        extra = tuple(_as_limit(lim, i) for i, lim in enumerate(limits))
        if store is not None:
            from ._shared_rate import SharedKeyedRateLimiter

            shared: SharedKeyedRateLimiter[_K] = SharedKeyedRateLimiter._create_keyed(
                rate,
                burst,
                per,
                extra,
                max_keys,
                clock,
                store,
                name,
                on_store_error,
                expected_replicas,
            )
            return shared
        check_name(name, None)
        self = object.__new__(cls)
        self._setup(rate, burst, per, extra, max_keys, clock)
        return self

    def _setup(
        self,
        rate: float,
        burst: float | None,
        per: float,
        limits: tuple[Limit, ...],
        max_keys: int,
        clock: Clock | None,
    ) -> None:
        extra = limits
        RateLimiter(rate, burst, per=per, limits=extra, clock=clock)  # validate now

        def factory() -> RateLimiter:
            return RateLimiter(rate, burst, per=per, limits=extra, clock=clock)

        self._factory = factory
        self._max_keys = require_positive_int("max_keys", max_keys)
        self._buckets: OrderedDict[_K, RateLimiter] = OrderedDict()

    def __repr__(self) -> str:
        probe = self._factory()
        return (
            f"KeyedRateLimiter(rate={probe.rate!r}/s, burst={probe.burst!r}, "
            f"keys={len(self._buckets)}, max_keys={self._max_keys})"
        )

    def _bucket(self, key: _K) -> RateLimiter:
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
            return bucket
        if len(buckets) >= self._max_keys:
            for old, candidate in buckets.items():
                if not candidate._waiting:
                    del buckets[old]
                    break
            else:
                logger.warning("KeyedRateLimiter: every one of %d keys is busy", len(buckets))
        bucket = buckets[key] = self._factory()
        return bucket

    async def acquire(
        self,
        key: _K,
        tokens: float = 1.0,
        timeout: float | None = None,  # noqa: ASYNC109 - a bound on the wait in line
    ) -> None:
        """Wait for ``tokens`` from ``key``'s bucket (see :meth:`RateLimiter.acquire`).

        Args:
            key: Whose bucket.
            tokens: How many tokens.
            timeout: Seconds to wait at most.

        Raises:
            ResourceTimeoutError: If ``timeout`` passes first.
        """
        await self._bucket(key).acquire(tokens, timeout)

    def try_acquire(self, key: _K, tokens: float = 1.0) -> bool:
        """Take ``tokens`` from ``key``'s bucket if available now.

        Args:
            key: Whose bucket.
            tokens: How many tokens.

        Returns:
            Whether they were taken.
        """
        return self._bucket(key).try_acquire(tokens)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def stats(self) -> KeyedRateLimiterStats:
        """Counts to graph.

        Returns:
            A :class:`KeyedRateLimiterStats` snapshot: ``keys`` held, ``max_keys``, and
            ``waiting`` and ``acquired`` summed over the keys.
        """
        buckets = list(self._buckets.values())
        return KeyedRateLimiterStats(
            keys=len(buckets),
            max_keys=self._max_keys,
            waiting=sum(b._waiting for b in buckets),
            acquired=sum(b._acquired for b in buckets),
        )
