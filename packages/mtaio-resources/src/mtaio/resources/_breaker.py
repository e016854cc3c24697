"""A circuit breaker: closed, open (fail fast), half-open (one trial)."""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, final, overload

from mtaio.exceptions import (
    CircuitBreakerError,
    ConfigurationTypeError,
    require_callable,
    require_non_negative,
    require_positive_int,
)
from mtaio.typing import Clock, is_async_callable

from ._store import FailurePolicy, RedisStore

if TYPE_CHECKING:
    from ._shared_breaker import SharedCircuitBreaker

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


class CircuitBreaker:
    """Stops calling a failing dependency for a while, then tries it again.

    Closed: calls go through; ``failure_threshold`` consecutive failures open the circuit.
    Open: every call raises :class:`~mtaio.exceptions.CircuitBreakerError` at once, for
    ``reset_timeout`` seconds. Half-open: up to ``half_open_max_calls`` trial calls go
    through at once (others are refused); a success closes the circuit, a failure opens it
    again for another ``reset_timeout``.

    Only errors matching ``failure_on`` count as failures; others (and cancellation) pass
    through without a verdict.

    Use it as ``await breaker.call(fn, *args)``, as a decorator (``@breaker``) or around a
    block (``async with breaker:``). Listeners added with :meth:`add_listener` are called as
    ``listener(breaker, old_state, new_state)`` on every change of state; the log lines of
    ``mtaio.resources`` name the breaker.

    Example:
        >>> breaker = CircuitBreaker(name="payments", failure_threshold=2)
        >>> breaker
        CircuitBreaker(name='payments', state=closed, failures=0)

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        reset_timeout: Seconds the circuit stays open before a trial.
        half_open_max_calls: Trial calls allowed at once while half-open.
        failure_on: The exception class(es) that count as failures.
        clock: A monotonic clock in seconds (inject ``ManualClock`` in tests).
        name: What the log lines, the errors and the repr call this breaker
            (``"circuit"`` when not given); with a store, what identifies the shared state
            (required there).
        store: ``None`` (the default) keeps the state in this process; a
            :class:`~mtaio.resources.RedisStore` shares it with every process that builds a
            breaker of the same ``name`` on the same store: they open together, and while
            half-open, ``half_open_max_calls`` trial calls run at a time across the fleet
            (each under a lease of ``reset_timeout``, so a prober that dies frees its
            slot). The open/closed decisions run on the server's clock.
        on_store_error: With a store, when it cannot answer: ``"fail_closed"`` (the
            default) refuses the call with :class:`~mtaio.exceptions.ResourceLimitError`;
            ``"fail_open"`` lets this process's own breaker decide until it answers again.

    Raises:
        ConfigurationError: On a non-positive ``failure_threshold`` or
            ``half_open_max_calls``, or a negative ``reset_timeout``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``name``, state-change listeners, ``async with breaker:``, ``store``.
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_entered",
        "_failure_on",
        "_failures",
        "_listeners",
        "_max_trials",
        "_opened",
        "_opened_at",
        "_rejected",
        "_state",
        "_successes",
        "_trials",
        "failure_threshold",
        "name",
        "reset_timeout",
    )

    # Construction is in __new__ (there is no __init__): given a store, it returns the shared
    # breaker, a subclass whose verdicts live in the store; the overloads tell the type
    # checker. The local breaker pays nothing for the option.
    @overload
    def __new__(
        cls,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        *,
        half_open_max_calls: int = 1,
        failure_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        clock: Clock = time.monotonic,
        name: str | None = None,
        store: None = None,
        on_store_error: FailurePolicy = "fail_closed",
    ) -> CircuitBreaker: ...

    @overload
    def __new__(
        cls,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        *,
        half_open_max_calls: int = 1,
        failure_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        clock: Clock = time.monotonic,
        name: str,
        store: RedisStore,
        on_store_error: FailurePolicy = "fail_closed",
    ) -> SharedCircuitBreaker: ...

    def __new__(
        cls,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        *,
        half_open_max_calls: int = 1,
        failure_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        clock: Clock = time.monotonic,
        name: str | None = None,
        store: RedisStore | None = None,
        on_store_error: FailurePolicy = "fail_closed",
    ) -> CircuitBreaker:
        args = (failure_threshold, reset_timeout, half_open_max_calls, failure_on, clock, name)
        if store is not None:
            from ._shared_breaker import SharedCircuitBreaker

            return SharedCircuitBreaker._create(args, store, on_store_error)
        self = object.__new__(cls)
        self._setup(*args)
        return self

    def _setup(
        self,
        failure_threshold: int,
        reset_timeout: float,
        half_open_max_calls: int,
        failure_on: type[BaseException] | tuple[type[BaseException], ...],
        clock: Clock,
        name: str | None,
    ) -> None:
        if name is None:
            name = "circuit"
        self.failure_threshold = require_positive_int("failure_threshold", failure_threshold)
        self.reset_timeout = float(require_non_negative("reset_timeout", reset_timeout))
        self._max_trials = require_positive_int("half_open_max_calls", half_open_max_calls)
        if not _is_error_spec(failure_on):
            raise ConfigurationTypeError(
                f"failure_on must be an exception class or a tuple of them, got {failure_on!r}"
            )
        given: object = name  # checked at run time, whatever the annotation says
        if not isinstance(given, str) or not given:
            raise ConfigurationTypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self._failure_on = failure_on
        self._clock = require_callable("clock", clock)
        self._listeners: list[Callable[[CircuitBreaker, CircuitState, CircuitState], object]] = []
        # the state each task's `async with` entered in, to free a half-open trial slot
        self._entered: dict[asyncio.Task[Any] | None, list[Any]] = {}
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._opened = 0
        self._trials = 0
        self._calls = 0
        self._successes = 0
        self._rejected = 0

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(name={self.name!r}, state={self.state.value}, "
            f"failures={self._failures})"
        )

    def add_listener(
        self, listener: Callable[[CircuitBreaker, CircuitState, CircuitState], object]
    ) -> None:
        """Call ``listener(breaker, old_state, new_state)`` on every change of state.

        A listener runs synchronously at the change; an error it raises is logged and does
        not affect the breaker.

        Args:
            listener: The callable.

        Raises:
            ConfigurationTypeError: If ``listener`` is not callable.
        """
        self._listeners.append(require_callable("listener", listener))

    def remove_listener(
        self, listener: Callable[[CircuitBreaker, CircuitState, CircuitState], object]
    ) -> None:
        """Stop calling ``listener``; a listener not added is ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _set_state(self, new: CircuitState) -> None:
        old, self._state = self._state, new
        if old is new:
            return
        for listener in tuple(self._listeners):
            try:
                listener(self, old, new)
            except Exception:
                logger.exception("circuit %r: state listener %r failed", self.name, listener)

    @property
    def state(self) -> CircuitState:
        """The current state (an open circuit whose time is up reads as half-open)."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._trials = 0
            logger.info("circuit %r half-open: trying again", self.name)
            self._set_state(CircuitState.HALF_OPEN)
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._opened += 1
        logger.warning("circuit %r opened after %d failure(s)", self.name, self._failures)
        self._set_state(CircuitState.OPEN)

    def _before(self) -> CircuitState:
        state = self.state
        if state is CircuitState.OPEN or (
            state is CircuitState.HALF_OPEN and self._trials >= self._max_trials
        ):
            self._rejected += 1
            left = max(0.0, self.reset_timeout - (self._clock() - self._opened_at))
            raise CircuitBreakerError(
                f"circuit {self.name!r} is {state.value} after {self._failures} failure(s); "
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
            logger.info("circuit %r closed", self.name)
            self._set_state(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """Count a failure (opens the circuit at the threshold, or from half-open).

        A failure while the circuit is already open (a call admitted before it opened,
        ending late) is counted but neither re-opens it nor pushes back its reset time.
        """
        self._failures += 1
        if self._state is CircuitState.OPEN:
            return
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

    async def __aenter__(self) -> CircuitBreaker:
        """Enter a block guarded like :meth:`call` (raises if the circuit refuses)."""
        state = self._before()
        self._entered.setdefault(asyncio.current_task(), []).append(state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._pop_entered()
        if exc is None:
            self.record_success()
        elif isinstance(exc, self._failure_on):
            self.record_failure()
        elif state is CircuitState.HALF_OPEN and self._state is CircuitState.HALF_OPEN:
            self._trials -= 1  # no verdict: free the trial slot

    def _pop_entered(self) -> Any:
        """What this task's innermost ``async with`` recorded on entry."""
        task = asyncio.current_task()
        stack = self._entered[task]
        entry = stack.pop()
        if not stack:
            del self._entered[task]
        return entry

    def reset(self) -> None:
        """Close the circuit and forget the failures."""
        self._failures = 0
        self._trials = 0
        self._set_state(CircuitState.CLOSED)

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


def _is_error_spec(value: object) -> bool:
    if isinstance(value, type):
        return issubclass(value, BaseException)
    return (
        isinstance(value, tuple)
        and bool(value)
        and all(isinstance(t, type) and issubclass(t, BaseException) for t in value)
    )
