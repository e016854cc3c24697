"""Retry with exponential back-off and jitter, and a switch that removes the waiting in tests."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar, final, overload

from mtaio.exceptions import (
    ConfigurationTypeError,
    RetryError,
    require_callable,
    require_non_negative,
    require_positive,
    require_positive_int,
)
from mtaio.typing import is_async_callable

__all__ = ("Retry", "is_testing", "retry", "set_testing")

_P = ParamSpec("_P")
_R = TypeVar("_R")

logger = logging.getLogger("mtaio.resources")

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

_testing = False


def set_testing(testing: bool = True) -> bool:
    """Make every :class:`Retry` skip its back-off waits (for test suites).

    Attempts still happen and errors are still raised; only the sleeping goes.

    Args:
        testing: ``True`` to remove the waits, ``False`` to restore them.

    Returns:
        The previous setting, to restore it afterwards.
    """
    global _testing
    previous, _testing = _testing, bool(testing)
    return previous


def is_testing() -> bool:
    """Whether :func:`set_testing` removed the back-off waits."""
    return _testing


def _matcher(retry_on: RetryOn) -> Callable[[BaseException], bool]:
    kinds: Any = retry_on
    if isinstance(kinds, type) and issubclass(kinds, BaseException):
        return lambda e: isinstance(e, kinds)
    if isinstance(kinds, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in kinds
    ):
        return lambda e: isinstance(e, kinds)
    if callable(kinds) and not isinstance(kinds, type):
        predicate: Callable[[BaseException], bool] = kinds
        return predicate
    raise ConfigurationTypeError(
        f"retry_on must be an exception class, a tuple of them or a predicate, got {retry_on!r}"
    )


@final
class Retry:
    """A retry policy: how often, how long to wait in between, which errors to retry.

    The wait after failed attempt ``n`` (1-based) is ``min(max_delay, delay * backoff **
    (n - 1))`` plus a random jitter in ``[0, jitter]`` seconds. ``asyncio.CancelledError``
    and other non-``Exception`` errors are never retried.

    Example:
        >>> policy = Retry(attempts=4, delay=0.5, jitter=0)
        >>> list(policy.delays())
        [0.5, 1.0, 2.0]

    Args:
        attempts: The most attempts in total (1 means no retry).
        delay: The first wait, in seconds.
        backoff: The factor each further wait grows by.
        max_delay: The longest wait before jitter.
        jitter: The most random seconds added to each wait.
        retry_on: Which errors to retry: an exception class, a tuple of them, or a
            predicate on the error.
        on_retry: Called as ``on_retry(attempt, error, wait)`` before each wait (sync or
            async).
        sleep: The sleep used between attempts (``asyncio.sleep``); inject one in tests.
        rng: The random source for the jitter.

    Raises:
        ConfigurationError: On a non-positive ``attempts`` or ``backoff``, or a negative
            ``delay``, ``max_delay`` or ``jitter``.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_matches",
        "_on_retry",
        "_rng",
        "_sleep",
        "attempts",
        "backoff",
        "delay",
        "jitter",
        "max_delay",
    )

    def __init__(
        self,
        attempts: int = 3,
        *,
        delay: float = 0.1,
        backoff: float = 2.0,
        max_delay: float = 30.0,
        jitter: float = 0.1,
        retry_on: RetryOn = Exception,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.attempts = require_positive_int("attempts", attempts)
        self.delay = float(require_non_negative("delay", delay))
        self.backoff = float(require_positive("backoff", backoff))
        self.max_delay = float(require_non_negative("max_delay", max_delay))
        self.jitter = float(require_non_negative("jitter", jitter))
        self._matches = _matcher(retry_on)
        self._on_retry = None if on_retry is None else require_callable("on_retry", on_retry)
        self._sleep = asyncio.sleep if sleep is None else require_callable("sleep", sleep)
        self._rng = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        return (
            f"Retry(attempts={self.attempts}, delay={self.delay}, backoff={self.backoff}, "
            f"max_delay={self.max_delay}, jitter={self.jitter})"
        )

    def delays(self) -> Iterator[float]:
        """The waits between attempts, jitter included (``attempts - 1`` of them)."""
        for n in range(self.attempts - 1):
            base = min(self.max_delay, self.delay * self.backoff**n)
            yield base + (self._rng.uniform(0, self.jitter) if self.jitter else 0.0)

    def retries(self, error: BaseException) -> bool:
        """Whether this policy retries after ``error``."""
        return isinstance(error, Exception) and bool(self._matches(error))

    async def call(
        self, func: Callable[_P, Awaitable[_R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Call ``func(*args, **kwargs)`` until it succeeds or the attempts run out.

        Args:
            func: A coroutine function (called afresh for each attempt).
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            What the first successful attempt returned.

        Raises:
            RetryError: When every attempt failed with a retried error; ``last_error`` and
                ``__cause__`` hold the last one.
            BaseException: An error the policy does not retry, at once and unchanged.
        """
        waits = self.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await func(*args, **kwargs)
            except Exception as error:
                if not self.retries(error):
                    raise
                if attempt >= self.attempts:
                    name = getattr(func, "__qualname__", repr(func))
                    raise RetryError(
                        f"{name} failed {attempt} time(s); last error: {error!r}",
                        attempts=attempt,
                        last_error=error,
                    ) from error
                wait = next(waits)
                logger.debug("attempt %d failed (%r); retrying in %.3f s", attempt, error, wait)
                if self._on_retry is not None:
                    result = self._on_retry(attempt, error, wait)
                    if asyncio.iscoroutine(result):
                        await result
                if not _testing:
                    await self._sleep(wait)

    def __call__(self, func: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
        """Decorate a coroutine function so each call is retried by this policy."""
        if not is_async_callable(func):
            raise ConfigurationTypeError(f"Retry decorates coroutine functions, got {func!r}")

        @functools.wraps(func)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return await self.call(func, *args, **kwargs)

        return wrapper


@overload
def retry(func: Callable[_P, Awaitable[_R]], /) -> Callable[_P, Coroutine[Any, Any, _R]]: ...


@overload
def retry(
    *,
    attempts: int = 3,
    delay: float = 0.1,
    backoff: float = 2.0,
    max_delay: float = 30.0,
    jitter: float = 0.1,
    retry_on: RetryOn = Exception,
    on_retry: Callable[[int, BaseException, float], object] | None = None,
) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Coroutine[Any, Any, _R]]]: ...


def retry(
    func: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    attempts: int = 3,
    delay: float = 0.1,
    backoff: float = 2.0,
    max_delay: float = 30.0,
    jitter: float = 0.1,
    retry_on: RetryOn = Exception,
    on_retry: Callable[[int, BaseException, float], object] | None = None,
) -> Any:
    """Retry a coroutine function: ``@retry`` or ``@retry(attempts=5, retry_on=OSError)``.

    Args:
        func: The coroutine function, when used bare.
        attempts: See :class:`Retry`.
        delay: See :class:`Retry`.
        backoff: See :class:`Retry`.
        max_delay: See :class:`Retry`.
        jitter: See :class:`Retry`.
        retry_on: See :class:`Retry`.
        on_retry: See :class:`Retry`.

    Returns:
        The wrapped function, or a decorator when called with arguments only.
    """
    policy = Retry(
        attempts,
        delay=delay,
        backoff=backoff,
        max_delay=max_delay,
        jitter=jitter,
        retry_on=retry_on,
        on_retry=on_retry,
    )
    return policy if func is None else policy(func)
