"""ResourceLimiter: a rate and a concurrency limit in one object, open to subclassing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, final, overload

from mtaio.exceptions import ConfigurationError, require_positive_int

from ._checks import require_timeout
from ._concurrency import ConcurrencyLimiter, ConcurrencyStats
from ._decorate import guard
from ._rate import RateLimiter, RateLimiterStats

__all__ = ("ResourceLimiter", "ResourceLimiterStats")

_P = ParamSpec("_P")
_R = TypeVar("_R")


@final
@dataclass(frozen=True, slots=True)
class ResourceLimiterStats:
    """A snapshot of a :class:`ResourceLimiter`'s figures, from ``stats()``.

    Each limit keeps its own snapshot, so ``stats().rate.acquired`` replaces the old
    ``stats()["rate.acquired"]``.

    Attributes:
        rate: The token bucket's :class:`RateLimiterStats`, or ``None`` without a rate limit.
        concurrency: The permits' :class:`ConcurrencyStats`, or ``None`` without a
            concurrency limit.
    """

    rate: RateLimiterStats | None
    concurrency: ConcurrencyStats | None


class ResourceLimiter:
    """A rate limit (token bucket) and a concurrency limit together.

    ``acquire(tokens)`` first takes a concurrency permit (when a concurrency limit is set),
    then the tokens; ``release()`` gives the permit back. Used as ``async with limiter:`` or
    as a decorator, the pair is handled for you.

    With neither ``rate`` nor ``concurrency``, and in a subclass whose ``__init__`` never
    calls ``super().__init__()`` (the seed guide's ``AdaptiveRateLimiter``), the limiter
    allows one token per second with a capacity of one token, created on first use. That
    default bucket lets a request of more than one token through once the bucket is full and
    then charges the debt, so ``acquire(tokens=1 / r)`` paces calls at ``r`` per second for
    any ``r``.

    ``async with`` and :meth:`limit` call this class's own ``acquire``/``release``, so a
    subclass may give ``acquire`` another signature (the guide's takes a resource id).

    Args:
        rate: Tokens per second, or ``None`` for no rate limit.
        concurrency: The most holders at once, or ``None`` for no concurrency limit.
        burst: The bucket capacity (see :class:`RateLimiter`); needs ``rate``.
        timeout: Seconds ``acquire`` waits at most; ``None`` waits as long as needed.

    Raises:
        ConfigurationError: On a non-positive ``rate``, ``burst`` or ``concurrency``, a
            negative ``timeout``, or ``burst`` without ``rate``.

    .. versionadded:: 0.1
    """

    # Class-level defaults: an instance whose __init__ never ran still reads these and is
    # configured on first use by _configure_default(). The names are prefixed so that
    # subclasses (which own plain names like ``rates``) cannot collide with them.
    _rl_configured: bool = False
    _rl_rate: RateLimiter | None = None
    _rl_concurrency: ConcurrencyLimiter | None = None
    _rl_timeout: float | None = None

    def __init__(
        self,
        rate: float | None = None,
        concurrency: int | None = None,
        *,
        burst: float | None = None,
        timeout: float | None = None,
    ) -> None:
        if rate is None and burst is not None:
            raise ConfigurationError("burst needs a rate: pass rate= as well")
        timeout = require_timeout("timeout", timeout)
        self._rl_timeout = timeout
        self._rl_concurrency = (
            None
            if concurrency is None
            else ConcurrencyLimiter(require_positive_int("concurrency", concurrency))
        )
        if rate is not None:
            self._rl_rate = RateLimiter(rate, burst)
            self._rl_configured = True
        elif concurrency is not None:
            self._rl_configured = True
        else:
            self._configure_default()

    def __repr__(self) -> str:
        bucket = self.rate_limiter
        permits = self._rl_concurrency
        parts = [
            "rate=None" if bucket is None else f"rate={bucket.rate!r}/s, burst={bucket.burst!r}",
            "concurrency=None"
            if permits is None
            else f"concurrency={permits.limit}, borrowed={permits.borrowed}",
            f"timeout={self._rl_timeout!r}",
        ]
        return f"{type(self).__name__}({', '.join(parts)})"

    def _configure_default(self) -> None:
        self._rl_rate = RateLimiter(1.0, 1.0, oversize="borrow")
        self._rl_configured = True

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The token bucket, or ``None`` without a rate limit."""
        if not self._rl_configured:
            self._configure_default()
        return self._rl_rate

    @property
    def concurrency_limiter(self) -> ConcurrencyLimiter | None:
        """The concurrency limiter, or ``None`` without a concurrency limit."""
        return self._rl_concurrency

    async def acquire(self, tokens: float = 1.0) -> None:
        """Take a concurrency permit (if limited), then ``tokens`` from the bucket.

        Args:
            tokens: Tokens to take (may be fractional).

        Raises:
            ResourceTimeoutError: If the limiter's ``timeout`` passes first; nothing is held.
            ConfigurationError: If ``tokens`` is not positive or exceeds the capacity.
        """
        if not self._rl_configured:
            self._configure_default()
        timeout = self._rl_timeout
        permits = self._rl_concurrency
        bucket = self._rl_rate
        if permits is not None:
            if timeout is None or bucket is None:
                await permits.acquire(timeout)
            else:
                loop = asyncio.get_running_loop()
                start = loop.time()
                await permits.acquire(timeout)
                timeout = max(0.0, timeout - (loop.time() - start))
        if bucket is not None:
            try:
                await bucket.acquire(tokens, timeout)
            except BaseException:
                if permits is not None:
                    permits.release()
                raise

    def release(self) -> None:
        """Give back the concurrency permit taken by :meth:`acquire` (tokens are spent).

        Raises:
            ResourceLockError: If a concurrency limit is set and no permit is held.
        """
        if self._rl_concurrency is not None:
            self._rl_concurrency.release()

    def stats(self) -> ResourceLimiterStats:
        """Counts to graph.

        Returns:
            A :class:`ResourceLimiterStats` snapshot holding the bucket's figures as
            ``rate`` and the permits' as ``concurrency`` (``None`` for a limit not set).
        """
        bucket = self.rate_limiter
        permits = self._rl_concurrency
        return ResourceLimiterStats(
            rate=None if bucket is None else bucket.stats(),
            concurrency=None if permits is None else permits.stats(),
        )

    async def __aenter__(self) -> ResourceLimiter:
        await ResourceLimiter.acquire(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        ResourceLimiter.release(self)

    @overload
    def limit(
        self, func: Callable[_P, Awaitable[_R]], /
    ) -> Callable[_P, Coroutine[Any, Any, _R]]: ...

    @overload
    def limit(
        self, *, tokens: float = 1.0
    ) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Coroutine[Any, Any, _R]]]: ...

    def limit(
        self, func: Callable[..., Awaitable[Any]] | None = None, *, tokens: float = 1.0
    ) -> Any:
        """Decorate a coroutine function so each call runs inside the limiter.

        Args:
            func: The coroutine function, when used bare (``@limiter.limit``).
            tokens: Tokens per call (``@limiter.limit(tokens=2)``).

        Returns:
            The wrapped function, or a decorator when called with arguments only.
        """

        def acquire() -> Awaitable[None]:
            return ResourceLimiter.acquire(self, tokens)

        def decorate(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
            return guard(fn, acquire, lambda: ResourceLimiter.release(self), "ResourceLimiter")

        return decorate if func is None else decorate(func)
