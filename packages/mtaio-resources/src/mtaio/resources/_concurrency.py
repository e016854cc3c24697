"""A FIFO-fair concurrency limiter whose limit can change while it is in use."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, final, overload

from mtaio.exceptions import ResourceLockError, ResourceTimeoutError, require_positive_int

from ._checks import require_timeout
from ._decorate import guard
from ._store import FailurePolicy, RedisStore, check_name

if TYPE_CHECKING:
    from ._shared_concurrency import SharedConcurrencyLimiter

__all__ = ("ConcurrencyLimiter", "ConcurrencyStats")

_P = ParamSpec("_P")
_R = TypeVar("_R")


@final
@dataclass(frozen=True, slots=True)
class ConcurrencyStats:
    """A snapshot of a :class:`ConcurrencyLimiter`'s figures, from ``stats()``.

    Attributes:
        limit: The most holders at once.
        borrowed: Permits held at the time of the snapshot.
        waiting: Tasks waiting in ``acquire``.
        acquired: Permits granted so far.
    """

    limit: int
    borrowed: int
    waiting: int
    acquired: int


class ConcurrencyLimiter:
    """At most ``limit`` holders at once; the others wait in FIFO order.

    Like :class:`asyncio.Semaphore`, plus: a release hands the permit straight to the first
    waiter (no barging by newcomers), ``acquire`` takes a timeout, ``limit`` can be raised or
    lowered while permits are out (lowering lets holders finish and admits nobody until the
    count is under the new limit), over-release is an error, and :meth:`stats` counts.

    Example:
        >>> limiter = ConcurrencyLimiter(2)
        >>> limiter.try_acquire(), limiter.try_acquire(), limiter.try_acquire()
        (True, True, False)

    Args:
        limit: The most permits out at once.
        store: ``None`` (the default) keeps the permits in this process; a
            :class:`~mtaio.resources.RedisStore` makes ``limit`` the fleet's: every process
            building a limiter of the same ``name`` on the same store shares it. Each permit
            is then held under a lease renewed while it is held; a process that dies loses
            its permits when their leases end. ``try_acquire`` is awaited, ``release()``
            returns the task that reaches the store, and ``stats()`` adds round trips,
            store errors and lost leases.
        name: What identifies the shared state; required with a store (checked, and
            otherwise unused, without one).
        lease: Seconds a permit outlives its holder's last renewal (renewed every
            ``lease / 3``): the longest a dead process's permits stay taken.
        on_store_error: With a store, what happens when it cannot answer within its
            timeout: ``"fail_closed"`` (the default) raises
            :class:`~mtaio.exceptions.ResourceLimitError`; ``"fail_open"`` takes a permit
            from a local limiter of ``limit // expected_replicas`` (at least 1).
        expected_replicas: How many processes share the limit, for the fail-open share.

    Raises:
        ConfigurationError: If ``limit`` is not a positive integer, or ``name`` is missing
            with a store.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``store``, ``name``, ``lease``, ``on_store_error``, ``expected_replicas``.
    """

    __slots__ = ("_acquired", "_borrowed", "_limit", "_waiters")

    # Construction is in __new__ (there is no __init__): given a store, it returns the shared
    # limiter, a subclass whose methods talk to the store; the overloads tell the type
    # checker. The local limiter pays nothing for the option.
    @overload
    def __new__(
        cls,
        limit: int,
        *,
        store: None = None,
        name: str | None = None,
        lease: float = 5.0,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> ConcurrencyLimiter: ...

    @overload
    def __new__(
        cls,
        limit: int,
        *,
        store: RedisStore,
        name: str,
        lease: float = 5.0,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> SharedConcurrencyLimiter: ...

    def __new__(
        cls,
        limit: int,
        *,
        store: RedisStore | None = None,
        name: str | None = None,
        lease: float = 5.0,
        on_store_error: FailurePolicy = "fail_closed",
        expected_replicas: int = 1,
    ) -> ConcurrencyLimiter:
        if store is not None:
            from ._shared_concurrency import SharedConcurrencyLimiter

            return SharedConcurrencyLimiter._create(
                limit, store, name, lease, on_store_error, expected_replicas
            )
        check_name(name, None)
        self = object.__new__(cls)
        self._setup(limit)
        return self

    def _setup(self, limit: int) -> None:
        self._limit = require_positive_int("limit", limit)
        self._borrowed = 0
        self._acquired = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimiter(limit={self._limit}, borrowed={self._borrowed}, "
            f"waiting={self.waiting})"
        )

    @property
    def limit(self) -> int:
        """The most permits out at once; assign to change it while in use."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = require_positive_int("limit", value)
        self._wake()

    @property
    def borrowed(self) -> int:
        """Permits currently held."""
        return self._borrowed

    @property
    def waiting(self) -> int:
        """Tasks waiting for a permit."""
        return sum(1 for f in self._waiters if not f.done())

    def locked(self) -> bool:
        """Whether an ``acquire`` now would wait."""
        return self._borrowed >= self._limit or bool(self._waiters)

    async def acquire(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - a wait bound
        """Take a permit, waiting in line if none is free.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as needed.

        Raises:
            ResourceTimeoutError: If ``timeout`` passes first (also a ``TimeoutError`` and a
                ``ResourceLimitError``); no permit is held then.
            ConfigurationError: If ``timeout`` is negative.
        """
        if timeout is not None:
            timeout = require_timeout("timeout", timeout)
            if timeout == math.inf:
                timeout = None
        if self._borrowed < self._limit and not self._waiters:
            self._borrowed += 1
            self._acquired += 1
            return
        await self._wait(timeout)

    async def _wait(self, patience: float | None) -> None:
        timeout = patience
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(future)
        handle = loop.call_later(timeout, _expire, future) if timeout is not None else None
        try:
            granted = await future
        except BaseException:
            if future.done() and not future.cancelled() and future.result():
                # handed a permit, then cancelled: pass it on, and uncount the grant (the
                # waiter never held it)
                self._acquired -= 1
                self.release()
            else:
                self._wake()
            raise
        finally:
            if handle is not None:
                handle.cancel()
        if not granted:
            self._wake()
            raise ResourceTimeoutError(
                f"concurrency limiter: no permit free within {timeout!r} s (limit={self._limit})",
                timeout=timeout,
            )

    def try_acquire(self) -> bool:
        """Take a permit if one is free now and nobody waits.

        Returns:
            Whether a permit was taken (release it with :meth:`release`).
        """
        if self._borrowed < self._limit and not self._waiters:
            self._borrowed += 1
            self._acquired += 1
            return True
        return False

    def release(self) -> None:
        """Give a permit back; the first waiter gets it.

        Raises:
            ResourceLockError: If no permit is held (more releases than acquires).
        """
        if self._borrowed <= 0:
            raise ResourceLockError("ConcurrencyLimiter.release() called more often than acquire()")
        self._borrowed -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters:
            future = waiters[0]
            if future.done():  # cancelled or timed out
                waiters.popleft()
                continue
            if self._borrowed >= self._limit:
                return
            waiters.popleft()
            self._borrowed += 1
            self._acquired += 1
            future.set_result(True)

    def stats(self) -> ConcurrencyStats:
        """Counts to graph.

        Returns:
            A :class:`ConcurrencyStats` snapshot: ``limit``, ``borrowed`` (permits held),
            ``waiting`` tasks and ``acquired`` (permits granted so far).
        """
        return ConcurrencyStats(
            limit=self._limit,
            borrowed=self._borrowed,
            waiting=self.waiting,
            acquired=self._acquired,
        )

    async def __aenter__(self) -> ConcurrencyLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    @overload
    def limit_calls(
        self, func: Callable[_P, Awaitable[_R]], /
    ) -> Callable[_P, Coroutine[Any, Any, _R]]: ...

    @overload
    def limit_calls(
        self, *, timeout: float | None = None
    ) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Coroutine[Any, Any, _R]]]: ...

    def limit_calls(
        self, func: Callable[..., Awaitable[Any]] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Decorate a coroutine function so each call holds a permit while it runs.

        Use it bare (``@limiter.limit_calls``) or with a timeout
        (``@limiter.limit_calls(timeout=5)``).

        Args:
            func: The coroutine function, when used bare.
            timeout: Seconds each call waits at most for a permit.

        Returns:
            The wrapped function, or a decorator when called with arguments only.
        """
        require_timeout("timeout", timeout)

        def acquire() -> Awaitable[None]:
            return self.acquire(timeout)

        def decorate(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
            return guard(fn, acquire, self.release, "ConcurrencyLimiter.limit_calls")

        return decorate if func is None else decorate(func)

    __call__ = limit_calls


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)
