"""Deadlines: TimeoutManager, timeout scopes that nest, and a cascading retry over timeouts.

A scope is built on :func:`asyncio.timeout_at`, which cancels the task at the deadline and
turns that one cancellation back into an exception when the block exits, so a cancel aimed
at the block never escapes it and never lands after it: once the block has exited, the
timer is cancelled. Nesting needs no arithmetic to be enforced (an outer timer fires
whatever an inner scope asked for) but each scope reports its *effective* deadline, the
earlier of its own and the enclosing one, through a context variable.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar, final

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    TimeoutError,
    require_callable,
    require_non_negative,
)

__all__ = ("TimeoutManager", "TimeoutScope", "current_deadline")

_T = TypeVar("_T")

_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar(
    "mtaio.resources.deadline", default=math.inf
)


def current_deadline() -> float | None:
    """The effective deadline of the innermost scope around the caller, in loop time.

    Returns:
        The loop time (``loop.time()``) at which the tightest enclosing scope expires, or
        ``None`` outside any bounded scope.
    """
    deadline = _DEADLINE.get()
    return None if deadline == math.inf else deadline


def _check_timeout(name: str, value: float | None) -> float | None:
    return None if value is None else float(require_non_negative(name, value))


@final
class TimeoutScope:
    """One bounded block: ``async with scope:``. Made by :meth:`TimeoutManager.timeout`.

    On expiry the block is cancelled at its current ``await``; then the scope either raises
    :class:`mtaio.exceptions.TimeoutError` (``raising=True``, also a builtin
    ``TimeoutError``) or swallows the cancellation and sets :attr:`expired`
    (``raising=False``: the block is cut short and the code after it runs).

    A scope can be entered once.

    Args:
        seconds: The time allowed, from entry; ``None`` for no limit of its own (it still
            reports the enclosing deadline).
        raising: Whether expiry raises or only sets :attr:`expired`.

    Raises:
        ConfigurationError: If ``seconds`` is negative.
    """

    __slots__ = ("_inner", "_raising", "_token", "deadline", "expired", "seconds")

    def __init__(self, seconds: float | None, *, raising: bool = True) -> None:
        self.seconds = _check_timeout("seconds", seconds)
        self._raising = raising
        self._inner: asyncio.Timeout | None = None
        self._token: contextvars.Token[float] | None = None
        #: The effective deadline in loop time (the earlier of this scope's and the
        #: enclosing one), ``None`` when unbounded; set on entry.
        self.deadline: float | None = None
        #: Whether this scope's own deadline cut the block short.
        self.expired = False

    def __repr__(self) -> str:
        return f"TimeoutScope(seconds={self.seconds!r}, expired={self.expired})"

    def remaining(self) -> float | None:
        """Seconds left before the effective deadline (never negative), or ``None``."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def __aenter__(self) -> TimeoutScope:
        if self._inner is not None:
            raise ConfigurationError("a TimeoutScope can be entered only once; make a new one")
        loop = asyncio.get_running_loop()
        own = None if self.seconds is None else loop.time() + self.seconds
        outer = _DEADLINE.get()
        effective = outer if own is None or own > outer else own
        self.deadline = None if effective == math.inf else effective
        self._token = _DEADLINE.set(effective)
        # Only our own deadline is armed: when the enclosing one is earlier, its own timer
        # fires and the enclosing scope (whose deadline it is) reports the expiry.
        self._inner = asyncio.timeout_at(own)
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        token, self._token = self._token, None
        if token is not None:
            # ValueError: exited from another context (a generator finalised by the loop)
            with contextlib.suppress(ValueError):
                _DEADLINE.reset(token)
        inner = self._inner
        assert inner is not None, "TimeoutScope exited without being entered"
        try:
            await inner.__aexit__(exc_type, exc, tb)
        except builtins.TimeoutError as error:
            if error is exc or not inner.expired():
                raise
            self.expired = True
            if not self._raising:
                return True
            raise TimeoutError(
                f"operation timed out after {self.seconds!r} s", timeout=self.seconds
            ) from exc
        # The deadline passed but the block caught the cancellation and ended on its own:
        # nothing to raise, but the flag tells the truth.
        self.expired = inner.expired()
        return False


@final
class TimeoutManager:
    """Time limits for blocks and single operations.

    ``async with TimeoutManager(5.0):`` bounds the block to five seconds;
    ``await manager.run(coro, timeout)`` bounds one awaitable, entered or not;
    ``async with manager.timeout(seconds):`` bounds a block and raises on expiry;
    ``async with manager.move_on(seconds) as scope:`` cuts the block short and sets
    ``scope.expired``; ``await manager.cascade(op, [1, 5, 30])`` tries ``op()`` with each
    timeout in turn. Scopes nest: an inner one can shorten the time left, never extend it.

    Every expiry raises :class:`mtaio.exceptions.TimeoutError`, which is also the builtin
    ``TimeoutError``, never a bare ``CancelledError``.

    Args:
        default_timeout: Seconds used when a method gets no timeout, and the bound of
            ``async with manager``; ``None`` for no limit.

    Raises:
        ConfigurationError: If ``default_timeout`` is negative.

    .. versionadded:: 0.1
    """

    __slots__ = ("_default", "_scopes")

    def __init__(self, default_timeout: float | None = None) -> None:
        self._default = _check_timeout("default_timeout", default_timeout)
        # per task: tasks sharing one manager each enter and exit their own scopes
        self._scopes: dict[asyncio.Task[Any] | None, list[TimeoutScope]] = {}

    def __repr__(self) -> str:
        return f"TimeoutManager(default_timeout={self._default!r})"

    @property
    def default_timeout(self) -> float | None:
        """The timeout used when none is given."""
        return self._default

    def _pick(self, timeout: float | None, name: str = "timeout") -> float | None:
        # name: the caller's own argument, so the error names what the user typed
        return self._default if timeout is None else _check_timeout(name, timeout)

    def timeout(self, seconds: float | None = None) -> TimeoutScope:
        """A scope that raises :class:`~mtaio.exceptions.TimeoutError` on expiry.

        Args:
            seconds: Time allowed; ``None`` uses ``default_timeout``.

        Returns:
            An async context manager (enter it once).
        """
        return TimeoutScope(self._pick(seconds, "seconds"))

    def move_on(self, seconds: float | None = None) -> TimeoutScope:
        """A scope that, on expiry, ends the block quietly and sets ``scope.expired``.

        Args:
            seconds: Time allowed; ``None`` uses ``default_timeout``.

        Returns:
            An async context manager (enter it once).
        """
        return TimeoutScope(self._pick(seconds, "seconds"), raising=False)

    @property
    def remaining(self) -> float | None:
        """Seconds left before the tightest deadline around the caller, or ``None``."""
        deadline = current_deadline()
        if deadline is None:
            return None
        return max(0.0, deadline - asyncio.get_running_loop().time())

    async def run(self, operation: Awaitable[_T], timeout: float | None = None) -> _T:  # noqa: ASYNC109 - the API the seed guide names
        """Await ``operation`` within ``timeout`` seconds.

        Args:
            operation: A coroutine or other awaitable.
            timeout: Seconds allowed; ``None`` uses ``default_timeout``.

        Returns:
            What ``operation`` returned.

        Raises:
            TimeoutError: If the time ran out (``operation`` was cancelled).
        """
        try:
            seconds = self._pick(timeout)
        except BaseException:
            if asyncio.iscoroutine(operation):
                operation.close()  # never leave an unawaited coroutine behind
            raise
        async with TimeoutScope(seconds):
            result = await operation
        return result  # noqa: RET504 - returning inside the block: mypy sees a scope that may swallow

    async def cascade(
        self,
        operation: Callable[[], Awaitable[_T]],
        timeouts: Sequence[float],
        *,
        on_timeout: Callable[[float, int], object] | None = None,
    ) -> _T:
        """Run ``operation()`` afresh with each timeout in turn until one attempt finishes.

        This is what the seed guide's ``cascading_timeout`` means to do; a context manager
        cannot run its block twice, so the operation is a callable started once per attempt.

        Args:
            operation: Makes the awaitable to run (called once per attempt).
            timeouts: Seconds allowed per attempt, in order (usually growing).
            on_timeout: Called as ``on_timeout(seconds, attempt)`` after an attempt times
                out and before the next one starts (not after the last).

        Returns:
            What the first attempt to finish in time returned.

        Raises:
            TimeoutError: If the last attempt timed out too.
            ConfigurationError: If ``timeouts`` is empty or holds a negative value.
        """
        require_callable("operation", operation)
        if on_timeout is not None:
            require_callable("on_timeout", on_timeout)
        if isinstance(timeouts, str | bytes) or not isinstance(timeouts, Iterable):
            raise ConfigurationTypeError(
                f"timeouts must be a sequence of seconds, got {timeouts!r}"
            )
        steps = [float(require_non_negative(f"timeouts[{i}]", t)) for i, t in enumerate(timeouts)]
        if not steps:
            raise ConfigurationError("timeouts must hold at least one timeout")
        for attempt, seconds in enumerate(steps, 1):
            try:
                async with TimeoutScope(seconds):
                    return await operation()
            except TimeoutError:
                if attempt == len(steps):
                    raise
                if on_timeout is not None:
                    on_timeout(seconds, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aenter__(self) -> TimeoutManager:
        scope = TimeoutScope(self._default)
        await scope.__aenter__()
        self._scopes.setdefault(asyncio.current_task(), []).append(scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        task = asyncio.current_task()
        stack = self._scopes[task]
        scope = stack.pop()
        if not stack:
            del self._scopes[task]
        return await scope.__aexit__(exc_type, exc, tb)
