"""A circuit breaker: closed, open (fail fast), half-open (one trial)."""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, final

from mtaio.exceptions import (
    CircuitBreakerError,
    ConfigurationTypeError,
    require_non_negative,
    require_positive_int,
)
from mtaio.typing import Clock, is_async_callable

__all__ = ("CircuitBreaker", "CircuitBreakerStats", "CircuitState")

_P = ParamSpec("_P")
_R = TypeVar("_R")

logger = logging.getLogger("mtaio.resources")


class CircuitState(enum.Enum):
    """The states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""
    OPEN = "open"
    """Calls fail at once with :class:`~mtaio.exceptions.CircuitBreakerError`."""
    HALF_OPEN = "half_open"
    """A limited number of trial calls go through to decide between closed and open."""


@final
@dataclass(frozen=True, slots=True)
class CircuitBreakerStats:
    """A snapshot of a :class:`CircuitBreaker`'s figures, from ``stats()``.

    ``state`` is the :class:`CircuitState` member itself, not its string: compare it with
    ``is CircuitState.OPEN``, and use ``stats().state.value`` (``"closed"``, ``"open"`` or
    ``"half_open"``) where a string is wanted, for example after ``dataclasses.asdict``.

    Attributes:
        state: The circuit's state at the time of the snapshot (a :class:`CircuitState`).
        failures: Consecutive failures counted so far.
        calls: Calls let through to the wrapped function.
        successes: Calls that succeeded.
        rejected: Calls refused at once (circuit open, or half-open with its trials busy).
        opened: How many times the circuit tripped (from closed, or again after a failed
            half-open trial).
    """

    state: CircuitState
    failures: int
    calls: int
    successes: int
    rejected: int
    opened: int


@final
class CircuitBreaker:
    """Stops calling a failing dependency for a while, then tries it again.

    Closed: calls go through; ``failure_threshold`` consecutive failures open the circuit.
    Open: every call raises :class:`~mtaio.exceptions.CircuitBreakerError` at once, for
    ``reset_timeout`` seconds. Half-open: up to ``half_open_max_calls`` trial calls go
    through at once (others are refused); a success closes the circuit, a failure opens it
    again for another ``reset_timeout``.

    Only errors matching ``failure_on`` count as failures; others (and cancellation) pass
    through without a verdict.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        reset_timeout: Seconds the circuit stays open before a trial.
        half_open_max_calls: Trial calls allowed at once while half-open.
        failure_on: The exception class(es) that count as failures.
        clock: A monotonic clock in seconds (inject ``ManualClock`` in tests).

    Raises:
        ConfigurationError: On a non-positive ``failure_threshold`` or
            ``half_open_max_calls``, or a negative ``reset_timeout``.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_failure_on",
        "_failures",
        "_max_trials",
        "_opened",
        "_opened_at",
        "_rejected",
        "_state",
        "_successes",
        "_trials",
        "failure_threshold",
        "reset_timeout",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        *,
        half_open_max_calls: int = 1,
        failure_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        clock: Clock = time.monotonic,
    ) -> None:
        self.failure_threshold = require_positive_int("failure_threshold", failure_threshold)
        self.reset_timeout = float(require_non_negative("reset_timeout", reset_timeout))
        self._max_trials = require_positive_int("half_open_max_calls", half_open_max_calls)
        self._failure_on = failure_on
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._opened = 0
        self._trials = 0
        self._calls = 0
        self._successes = 0
        self._rejected = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state.value}, failures={self._failures})"

    @property
    def state(self) -> CircuitState:
        """The current state (an open circuit whose time is up reads as half-open)."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._state = CircuitState.HALF_OPEN
            self._trials = 0
            logger.info("circuit half-open: trying again")
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._opened += 1
        logger.warning("circuit opened after %d failure(s)", self._failures)

    def _before(self) -> CircuitState:
        state = self.state
        if state is CircuitState.OPEN or (
            state is CircuitState.HALF_OPEN and self._trials >= self._max_trials
        ):
            self._rejected += 1
            left = max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
            raise CircuitBreakerError(
                f"circuit is {state.value} after {self._failures} failure(s); "
                f"next trial in {left:.3g} s",
                failures=self._failures,
                reset_timeout=self.reset_timeout,
            )
        if state is CircuitState.HALF_OPEN:
            self._trials += 1
        self._calls += 1
        return state

    def record_success(self) -> None:
        """Count a success (closes a half-open circuit); used by :meth:`call`."""
        self._successes += 1
        self._failures = 0
        if self._state is CircuitState.HALF_OPEN:
            self._trials = 0
            self._state = CircuitState.CLOSED
            logger.info("circuit closed")

    def record_failure(self) -> None:
        """Count a failure (opens the circuit at the threshold, or from half-open)."""
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._trials = 0
            self._open()

    async def call(
        self, func: Callable[_P, Awaitable[_R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Call ``func(*args, **kwargs)`` through the breaker.

        Args:
            func: A coroutine function.
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Returns:
            What ``func`` returned.

        Raises:
            CircuitBreakerError: If the circuit is open (or half-open with its trials out).
        """
        state = self._before()
        try:
            result = await func(*args, **kwargs)
        except self._failure_on:
            self.record_failure()
            raise
        except BaseException:
            if state is CircuitState.HALF_OPEN and self._state is CircuitState.HALF_OPEN:
                self._trials -= 1  # no verdict: free the trial slot
            raise
        self.record_success()
        return result

    def __call__(self, func: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
        """Decorate a coroutine function so every call goes through the breaker."""
        if not is_async_callable(func):
            raise ConfigurationTypeError(
                f"CircuitBreaker decorates coroutine functions, got {func!r}"
            )

        @functools.wraps(func)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return await self.call(func, *args, **kwargs)

        return wrapper

    def reset(self) -> None:
        """Close the circuit and forget the failures."""
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._trials = 0

    def stats(self) -> CircuitBreakerStats:
        """Counts to graph.

        Returns:
            A :class:`CircuitBreakerStats` snapshot: ``state`` (the :class:`CircuitState`
            member), ``failures`` (consecutive), ``calls`` let through, ``successes``,
            ``rejected`` calls, and ``opened``: how many times the circuit tripped (from
            closed, or again after a failed half-open trial).
        """
        return CircuitBreakerStats(
            state=self.state,
            failures=self._failures,
            calls=self._calls,
            successes=self._successes,
            rejected=self._rejected,
            opened=self._opened,
        )
