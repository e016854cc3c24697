"""Retry with exponential back-off and jitter, and a switch that removes the waiting in tests.

The vocabulary is the toolkit's one definition of a retry (mtaio.data's stage policy uses the
same names and defaults): ``attempts``, ``delay`` (the first wait), ``factor`` (its growth),
``max_delay``, ``jitter`` (additive seconds, or ``"full"``), ``timeout`` (the whole budget),
``attempt_timeout`` (each attempt), ``retry_on``, ``retry_if_result``, ``reraise``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast, final, overload

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    RetryError,
    require_callable,
    require_non_negative,
    require_positive,
    require_positive_int,
)
from mtaio.typing import Clock, is_async_callable

from ._checks import require_timeout

__all__ = ("Attempt", "Retry", "is_testing", "retry", "retrying", "set_testing")

_P = ParamSpec("_P")
_R = TypeVar("_R")

logger = logging.getLogger("mtaio.resources")

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
Jitter = float | Literal["full"]

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
    if not isinstance(testing, bool):
        raise ConfigurationTypeError(f"testing must be True or False, got {testing!r}")
    previous, _testing = _testing, testing
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


def _check_jitter(jitter: object) -> Jitter:
    if jitter == "full" and isinstance(jitter, str):
        return "full"
    if isinstance(jitter, str):
        raise ConfigurationError(f'jitter must be a number of seconds or "full", got {jitter!r}')
    value = float(require_non_negative("jitter", cast(float, jitter)))
    if math.isinf(value):
        raise ConfigurationError(f"jitter must be finite, got {jitter!r}")
    return value


class _Rejected(Exception):
    """The result a ``retry_if_result`` predicate refused (what ``on_retry`` is given)."""

    def __init__(self, result: object) -> None:
        super().__init__(f"result rejected by retry_if_result: {result!r}")
        self.result = result


@final
class Retry:
    """A retry policy: how often, how long to wait in between, what to retry.

    The wait after failed attempt ``n`` (1-based) is ``min(max_delay, delay * factor **
    (n - 1) + U(0, jitter))``: a random jitter of up to ``jitter`` seconds, the whole capped at
    ``max_delay`` (as :class:`mtaio.data.Retry` computes it); with ``jitter="full"`` the wait
    is drawn uniformly from ``[0, min(max_delay, delay * factor ** (n - 1))]`` instead (AWS's
    "full jitter", which spreads a fleet of retrying clients best).
    ``asyncio.CancelledError`` and other non-``Exception`` errors are never retried.

    When the attempts (or the ``timeout`` budget) run out, the last error is re-raised as it
    was, with a note (PEP 678) naming the attempts, so ``except ConnectionError`` still
    catches it; ``reraise=False`` raises :class:`~mtaio.exceptions.RetryError` instead,
    chained from the last error.

    Three forms: ``await policy.call(fn, *args)``, ``@policy`` on a coroutine function, and
    a block::

        async for attempt in policy:  # or retrying(attempts=5, ...)
            with attempt:
                await flaky()

    Example:
        >>> policy = Retry(attempts=4, delay=0.5, jitter=0)
        >>> list(policy.delays())
        [0.5, 1.0, 2.0]

    Args:
        attempts: The most attempts in total (1 means no retry).
        delay: The first wait, in seconds.
        factor: The factor each further wait grows by (1 keeps it constant).
        max_delay: The longest wait, jitter included.
        jitter: The most random seconds added to each wait, or ``"full"`` for a wait drawn
            uniformly between zero and the computed one.
        timeout: The whole budget in seconds (attempts and waits together); no attempt
            starts, and no wait begins, that would end past it, and a running attempt is cut
            off at it. ``None`` for no budget.
        attempt_timeout: Seconds each attempt may take; one that takes longer is cancelled
            and counts as a failure with a ``TimeoutError`` (retried unless ``retry_on``
            says otherwise). ``None`` for no limit.
        retry_on: Which errors to retry: an exception class, a tuple of them, or a
            predicate on the error.
        retry_if_result: A predicate on a successful attempt's result: ``True`` retries
            it. When the attempts run out on a refused result, ``RetryError`` is raised
            (there is no error to re-raise).
        reraise: ``True`` re-raises the last error when giving up; ``False`` raises
            ``RetryError`` from it.
        on_retry: Called as ``on_retry(attempt, error, wait)`` before each wait (sync or
            async); for a refused result, ``error`` describes it.
        sleep: The sleep used between attempts (``asyncio.sleep``); inject one in tests.
        rng: The random source for the jitter.
        clock: A monotonic clock for the ``timeout`` budget (the loop's by default).

    Raises:
        ConfigurationError: On a non-positive ``attempts``, ``factor`` or
            ``attempt_timeout``, or a negative ``delay``, ``max_delay``, ``jitter`` or
            ``timeout``.

    .. versionchanged:: 0.2
       ``backoff`` is now ``factor``; giving up re-raises the last error (``reraise``);
       ``timeout``, ``attempt_timeout``, ``retry_if_result``, full jitter, the block form.
    """

    __slots__ = (
        "_clock",
        "_matches",
        "_on_retry",
        "_result_predicate",
        "_rng",
        "_sleep",
        "attempt_timeout",
        "attempts",
        "delay",
        "factor",
        "jitter",
        "max_delay",
        "reraise",
        "timeout",
    )

    def __init__(
        self,
        attempts: int = 3,
        *,
        delay: float = 0.1,
        factor: float = 2.0,
        max_delay: float = 30.0,
        jitter: Jitter = 0.1,
        timeout: float | None = None,
        attempt_timeout: float | None = None,
        retry_on: RetryOn = Exception,
        retry_if_result: Callable[[Any], bool] | None = None,
        reraise: bool = True,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.attempts = require_positive_int("attempts", attempts)
        self.delay = float(require_non_negative("delay", delay))
        self.factor = float(require_positive("factor", factor))
        self.max_delay = float(require_non_negative("max_delay", max_delay))
        if math.isinf(self.delay) or math.isinf(self.factor):
            name = "delay" if math.isinf(self.delay) else "factor"
            raise ConfigurationError(f"{name} must be finite, got inf")
        self.jitter: Jitter = _check_jitter(jitter)
        self.timeout = require_timeout("timeout", timeout)
        self.attempt_timeout = (
            None
            if attempt_timeout is None
            else require_positive("attempt_timeout", attempt_timeout)
        )
        self._matches = _matcher(retry_on)
        self._result_predicate = (
            None
            if retry_if_result is None
            else require_callable("retry_if_result", retry_if_result)
        )
        if not isinstance(reraise, bool):
            raise ConfigurationTypeError(f"reraise must be True or False, got {reraise!r}")
        self.reraise = reraise
        self._on_retry = None if on_retry is None else require_callable("on_retry", on_retry)
        self._sleep = asyncio.sleep if sleep is None else require_callable("sleep", sleep)
        if rng is not None and not isinstance(rng, random.Random):
            raise ConfigurationTypeError(f"rng must be a random.Random, got {rng!r}")
        self._rng = rng if rng is not None else random.Random()
        self._clock = None if clock is None else require_callable("clock", clock)

    def __repr__(self) -> str:
        return (
            f"Retry(attempts={self.attempts}, delay={self.delay}, factor={self.factor}, "
            f"max_delay={self.max_delay}, jitter={self.jitter!r}, timeout={self.timeout}, "
            f"attempt_timeout={self.attempt_timeout}, reraise={self.reraise})"
        )

    def delays(self) -> Iterator[float]:
        """The waits between attempts, jitter included (``attempts - 1`` of them)."""
        base = self.delay
        for _ in range(self.attempts - 1):
            capped = base if base < self.max_delay else self.max_delay
            if self.jitter == "full":
                yield self._rng.uniform(0, capped)
            else:
                wait = capped + self._rng.uniform(0, self.jitter) if self.jitter else capped
                yield wait if wait < self.max_delay else self.max_delay
            # grows by multiplication (no overflow: it stops growing once past the cap)
            if base < self.max_delay:
                base *= self.factor

    def retries(self, error: BaseException) -> bool:
        """Whether this policy retries after ``error``."""
        return isinstance(error, Exception) and bool(self._matches(error))

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    async def call(
        self, func: Callable[_P, Awaitable[_R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Call ``func(*args, **kwargs)`` until it succeeds or the attempts run out.

        Args:
            func: A coroutine function (called afresh for each attempt).
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            What the first successful (and accepted) attempt returned.

        Raises:
            BaseException: The last attempt's error when giving up (``reraise=True``, with
                a note naming the attempts), or an error the policy does not retry, at once
                and unchanged.
            RetryError: When giving up with ``reraise=False`` (``last_error`` and
                ``__cause__`` hold the last error), or on a result refused to the end.
        """
        name = getattr(func, "__qualname__", None) or repr(func)
        async for attempt in _Attempts(self, name):
            async with attempt:
                attempt.result = await func(*args, **kwargs)
            if attempt.accepted:
                return attempt.result  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def __call__(self, func: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
        """Decorate a coroutine function so each call is retried by this policy."""
        if not is_async_callable(func):
            raise ConfigurationTypeError(f"Retry decorates coroutine functions, got {func!r}")

        @functools.wraps(func)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return await self.call(func, *args, **kwargs)

        return wrapper

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """The block form: ``async for attempt in policy: with attempt: ...``."""
        return _Attempts(self, "block")


@final
class Attempt:
    """One attempt of the block form; enter it with ``with`` (or ``async with``).

    A retried error raised inside the block is kept and the loop goes on to the next
    attempt after the back-off wait; when the attempts run out the loop re-raises it (or
    raises ``RetryError``). Leaving the block without an error ends the loop, unless
    ``retry_if_result`` refuses what was stored in :attr:`result`. ``async with attempt``
    also applies ``attempt_timeout`` (a plain ``with`` cannot cancel the block).

    Attributes:
        number: The attempt's number, from 1.
        result: What the block stored, checked by ``retry_if_result``.
    """

    __slots__ = ("_owner", "_timer", "accepted", "error", "number", "result")

    def __init__(self, owner: _Attempts, number: int) -> None:
        self._owner = owner
        self._timer: asyncio.Timeout | None = None
        self.number = number
        self.result: Any = None
        self.error: BaseException | None = None
        self.accepted = False

    def __repr__(self) -> str:
        return f"Attempt(number={self.number})"

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            predicate = self._owner.policy._result_predicate
            if predicate is not None and predicate(self.result):
                self.error = _Rejected(self.result)
            else:
                self.accepted = True
            return False
        if self._owner.policy.retries(exc):
            self.error = exc
            return True  # kept; the loop decides between another attempt and giving up
        return False

    async def __aenter__(self) -> Attempt:
        limit = self._owner.attempt_limit()
        if limit is not None:
            self._timer = asyncio.timeout(limit)
            await self._timer.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        timer, self._timer = self._timer, None
        if timer is not None:
            try:
                await timer.__aexit__(exc_type, exc, tb)
            except TimeoutError as error:
                error.add_note(
                    f"mtaio.resources.Retry: attempt {self.number} took longer than "
                    f"{self._owner.attempt_limit_seen} s"
                )
                return self.__exit__(type(error), error, error.__traceback__)
        return self.__exit__(exc_type, exc, tb)


class _Attempts:
    """The iterator behind the block form and :meth:`Retry.call`."""

    __slots__ = ("_attempt", "_deadline", "_waits", "attempt_limit_seen", "name", "policy")

    def __init__(self, policy: Retry, name: str) -> None:
        self.policy = policy
        self.name = name
        self._waits = policy.delays()
        self._attempt: Attempt | None = None
        self._deadline: float | None = None
        self.attempt_limit_seen: float | None = None

    def __aiter__(self) -> _Attempts:
        return self

    def attempt_limit(self) -> float | None:
        """Seconds this attempt may take: ``attempt_timeout`` within the budget's rest."""
        limit = self.policy.attempt_timeout
        if self._deadline is not None:
            left = max(0.0, self._deadline - self.policy._now())
            limit = left if limit is None or left < limit else limit
        self.attempt_limit_seen = limit
        return limit

    async def __anext__(self) -> Attempt:
        policy = self.policy
        previous = self._attempt
        if previous is None:
            if policy.timeout is not None:
                self._deadline = policy._now() + policy.timeout
            self._attempt = Attempt(self, 1)
            return self._attempt
        if previous.accepted or previous.error is None:
            # success (or the block was left without a verdict, e.g. by `break`)
            raise StopAsyncIteration
        error = previous.error
        number = previous.number
        wait = next(self._waits, None)
        if (
            wait is not None
            and self._deadline is not None
            and policy._now() + (0.0 if _testing else wait) >= self._deadline
        ):
            wait = None  # the wait would end past the budget: give up now
        if wait is None:
            self._give_up(error, number)
        logger.debug(
            "%s: attempt %d failed (%r); retrying in %.3f s", self.name, number, error, wait
        )
        assert wait is not None
        if policy._on_retry is not None:
            result = policy._on_retry(number, error, wait)
            if asyncio.iscoroutine(result):
                await result
        if not _testing:
            await policy._sleep(wait)
        self._attempt = Attempt(self, number + 1)
        return self._attempt

    def _give_up(self, error: BaseException, attempts: int) -> None:
        what = f"{self.name} failed {attempts} time(s)"
        if isinstance(error, _Rejected):
            raise RetryError(f"{what}; last result refused: {error.result!r}", attempts=attempts)
        if self.policy.reraise:
            error.add_note(f"mtaio.resources.Retry: gave up after {attempts} attempt(s)")
            raise error
        raise RetryError(
            f"{what}; last error: {error!r}", attempts=attempts, last_error=error
        ) from error


def retrying(
    attempts: int = 3,
    *,
    delay: float = 0.1,
    factor: float = 2.0,
    max_delay: float = 30.0,
    jitter: Jitter = 0.1,
    timeout: float | None = None,
    attempt_timeout: float | None = None,
    retry_on: RetryOn = Exception,
    retry_if_result: Callable[[Any], bool] | None = None,
    reraise: bool = True,
    on_retry: Callable[[int, BaseException, float], object] | None = None,
) -> Retry:
    """A retry policy for the block form, iterated with ``async for``.

    Used as ``async for attempt in retrying(attempts=5): with attempt: ...``.

    The arguments are :class:`Retry`'s; the returned policy is iterated with ``async for``
    (afresh each time).

    Args:
        attempts: See :class:`Retry`.
        delay: See :class:`Retry`.
        factor: See :class:`Retry`.
        max_delay: See :class:`Retry`.
        jitter: See :class:`Retry`.
        timeout: See :class:`Retry`.
        attempt_timeout: See :class:`Retry` (applied by ``async with attempt``).
        retry_on: See :class:`Retry`.
        retry_if_result: See :class:`Retry` (checks ``attempt.result``).
        reraise: See :class:`Retry`.
        on_retry: See :class:`Retry`.

    Returns:
        The policy.
    """
    return Retry(
        attempts,
        delay=delay,
        factor=factor,
        max_delay=max_delay,
        jitter=jitter,
        timeout=timeout,
        attempt_timeout=attempt_timeout,
        retry_on=retry_on,
        retry_if_result=retry_if_result,
        reraise=reraise,
        on_retry=on_retry,
    )


@overload
def retry(func: Callable[_P, Awaitable[_R]], /) -> Callable[_P, Coroutine[Any, Any, _R]]: ...


@overload
def retry(
    *,
    attempts: int = 3,
    delay: float = 0.1,
    factor: float = 2.0,
    max_delay: float = 30.0,
    jitter: Jitter = 0.1,
    timeout: float | None = None,
    attempt_timeout: float | None = None,
    retry_on: RetryOn = Exception,
    retry_if_result: Callable[[Any], bool] | None = None,
    reraise: bool = True,
    on_retry: Callable[[int, BaseException, float], object] | None = None,
) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Coroutine[Any, Any, _R]]]: ...


def retry(
    func: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    attempts: int = 3,
    delay: float = 0.1,
    factor: float = 2.0,
    max_delay: float = 30.0,
    jitter: Jitter = 0.1,
    timeout: float | None = None,
    attempt_timeout: float | None = None,
    retry_on: RetryOn = Exception,
    retry_if_result: Callable[[Any], bool] | None = None,
    reraise: bool = True,
    on_retry: Callable[[int, BaseException, float], object] | None = None,
) -> Any:
    """Retry a coroutine function: ``@retry`` or ``@retry(attempts=5, retry_on=OSError)``.

    Args:
        func: The coroutine function, when used bare.
        attempts: See :class:`Retry`.
        delay: See :class:`Retry`.
        factor: See :class:`Retry`.
        max_delay: See :class:`Retry`.
        jitter: See :class:`Retry`.
        timeout: See :class:`Retry`.
        attempt_timeout: See :class:`Retry`.
        retry_on: See :class:`Retry`.
        retry_if_result: See :class:`Retry`.
        reraise: See :class:`Retry`.
        on_retry: See :class:`Retry`.

    Returns:
        The wrapped function, or a decorator when called with arguments only.
    """
    policy = retrying(
        attempts,
        delay=delay,
        factor=factor,
        max_delay=max_delay,
        jitter=jitter,
        timeout=timeout,
        attempt_timeout=attempt_timeout,
        retry_on=retry_on,
        retry_if_result=retry_if_result,
        reraise=reraise,
        on_retry=on_retry,
    )
    return policy if func is None else policy(func)
