"""A circuit breaker shared by every process through Redis.

The state is one hash ``{prefix:name}:breaker``: ``s`` (0 closed, 1 open, 2 half-open),
``f`` (consecutive failures), ``u`` (server time in ms the open state ends), ``t`` and ``p``
(trial calls running and the end of their lease), ``n`` (times opened). Two scripts run on
the server's clock: BEFORE (may this call go through? it turns an open circuit whose time is
up half-open and hands out the fleet's trial slots) and AFTER (the verdict). A replica that
learns the circuit is open refuses calls locally until the open state ends, with no further
round trip; a healthy closed circuit costs one round trip per call (the verdict of a success
is only written when there were failures to clear).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, final

from mtaio.exceptions import CircuitBreakerError

from ._breaker import CircuitBreaker, CircuitState
from ._store import SharedState, StoreUnavailable

__all__ = ("SharedCircuitBreaker", "SharedCircuitBreakerStats")

_P = ParamSpec("_P")
_R = TypeVar("_R")

logger = logging.getLogger("mtaio.resources")

# KEYS: the hash. ARGV: trial lease (ms), trials allowed, key lifetime (ms).
# Reply: {allowed, state, failures, ms left (open: until the trial; half-open: lease)}.
BEFORE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 's', 'f', 'u', 't', 'p')
local s = tonumber(h[1]) or 0
local f = tonumber(h[2]) or 0
local u = tonumber(h[3]) or 0
local tr = tonumber(h[4]) or 0
local p = tonumber(h[5]) or 0
if s == 1 and now >= u then
  s = 2
  tr = 0
  redis.call('HSET', KEYS[1], 's', 2, 't', 0)
end
if s == 1 then return {0, 1, f, u - now} end
if s == 2 then
  if now >= p then tr = 0 end
  if tr >= tonumber(ARGV[2]) then return {0, 2, f, p - now} end
  redis.call('HSET', KEYS[1], 't', tr + 1, 'p', now + tonumber(ARGV[1]))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return {1, 2, f, 0}
end
return {1, 0, f, 0}
"""

# KEYS: the hash. ARGV: outcome (1 success, 0 failure, 2 no verdict), was a trial (0/1),
# failure threshold, open time (ms), key lifetime (ms). Reply: {state, failures, opened now}.
AFTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 's', 'f', 't')
local s = tonumber(h[1]) or 0
local f = tonumber(h[2]) or 0
local tr = tonumber(h[3]) or 0
local outcome = tonumber(ARGV[1])
local opened = 0
if outcome == 1 then
  if s == 2 then
    s = 0
    redis.call('HSET', KEYS[1], 's', 0, 'f', 0, 't', 0)
  elseif f ~= 0 then
    redis.call('HSET', KEYS[1], 'f', 0)
  end
  f = 0
elseif outcome == 0 then
  f = f + 1
  if s == 2 or (s == 0 and f >= tonumber(ARGV[3])) then
    s = 1
    opened = 1
    redis.call('HSET', KEYS[1], 's', 1, 'f', f, 'u', now + tonumber(ARGV[4]), 't', 0)
    redis.call('HINCRBY', KEYS[1], 'n', 1)
  else
    redis.call('HSET', KEYS[1], 'f', f)
  end
elseif tonumber(ARGV[2]) == 1 and s == 2 and tr > 0 then
  redis.call('HSET', KEYS[1], 't', tr - 1)
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return {s, f, opened}
"""

_STATES = {0: CircuitState.CLOSED, 1: CircuitState.OPEN, 2: CircuitState.HALF_OPEN}


@final
@dataclass(frozen=True, slots=True)
class SharedCircuitBreakerStats:
    """A snapshot of a circuit breaker on a shared store, from ``stats()``.

    Attributes:
        state: The fleet's state at this process's last answer from the store.
        failures: The fleet's consecutive failures at that answer.
        calls: Calls this process let through.
        successes: Calls of this process that succeeded.
        rejected: Calls this process refused.
        opened: Times this process's verdict opened the circuit.
        round_trips: Calls this object made to the store.
        store_errors: Calls that failed.
        fallbacks: Calls decided without the store.
    """

    state: CircuitState
    failures: int
    calls: int
    successes: int
    rejected: int
    opened: int
    round_trips: int
    store_errors: int
    fallbacks: int


class SharedCircuitBreaker(CircuitBreaker):
    """A :class:`~mtaio.resources.CircuitBreaker` whose state lives in a shared store.

    Made by ``CircuitBreaker(..., store=RedisStore(...), name=...)``; see there.
    :meth:`reset` returns the task that resets the shared state.

    .. versionadded:: 0.2
    """

    __slots__ = ("_fallback", "_fallbacks", "_local_open_until", "_round_trips", "_shared")

    _fallback: CircuitBreaker | None
    _fallbacks: int
    _local_open_until: float
    _round_trips: int
    _shared: SharedState

    @classmethod
    def _create(
        cls, args: tuple[Any, ...], store: object, on_store_error: object
    ) -> SharedCircuitBreaker:
        self = object.__new__(cls)
        self._setup(*args)
        self._shared = state = SharedState(store, args[-1], on_store_error, 1)
        self._fallback = (
            CircuitBreaker(*args[:2], half_open_max_calls=args[2], failure_on=args[3], name=args[5])
            if state.policy == "fail_open"
            else None
        )
        self._fallbacks = 0
        self._local_open_until = -math.inf
        self._round_trips = 0
        return self

    @property
    def _key(self) -> list[str]:
        return [self._shared.store.key(self._shared.name, "breaker")]

    @property
    def _lifetime_ms(self) -> int:
        # long enough to outlive an open state, short enough that an idle breaker goes away
        return math.ceil(self.reset_timeout * 1000) + 60_000

    @property
    def state(self) -> CircuitState:
        """The fleet's state at this process's last answer from the store."""
        return self._state

    def _seen(self, code: object, failures: object) -> None:
        state = _STATES.get(int(code), CircuitState.CLOSED)  # type: ignore[call-overload]
        self._failures = int(failures)  # type: ignore[call-overload]
        if state is not self._state:
            logger.info("circuit %r is %s (shared)", self.name, state.value)
            self._set_state(state)

    async def _run(self, script: str, args: list[Any]) -> Any:
        self._round_trips += 1
        return await self._shared.store.run(script, self._key, args)

    async def _admit(self) -> tuple[bool, bool]:
        """Ask the store whether a call may go: ``(trial, clean)``; raises if refused.

        ``clean``: the fleet had no failures, so a success needs no verdict written.
        """
        state = self._shared
        if time.monotonic() < self._local_open_until:
            self._rejected += 1
            raise CircuitBreakerError(
                f"circuit {self.name!r} is open (shared); next trial in "
                f"{self._local_open_until - time.monotonic():.3g} s",
                failures=self._failures,
                reset_timeout=self.reset_timeout,
            )
        lease = math.ceil(max(self.reset_timeout, 0.001) * 1000)
        reply = await self._run(BEFORE, [lease, self._max_trials, self._lifetime_ms])
        try:
            allowed, code, failures, left = (int(x) for x in reply)
        except (TypeError, ValueError) as error:
            raise StoreUnavailable(f"malformed reply from the store: {reply!r}") from error
        state.succeeded()
        self._seen(code, failures)
        if not allowed:
            self._rejected += 1
            if code == 1:
                self._local_open_until = time.monotonic() + max(0, left) / 1000
            raise CircuitBreakerError(
                f"circuit {self.name!r} is {_STATES[code].value} (shared) after "
                f"{failures} failure(s); next trial in {max(0, left) / 1000:.3g} s",
                failures=failures,
                reset_timeout=self.reset_timeout,
            )
        self._calls += 1
        return code == 2, failures == 0 and code == 0

    async def _verdict(self, outcome: int, trial: bool) -> None:
        try:
            reply = await self._run(
                AFTER,
                [
                    outcome,
                    int(trial),
                    self.failure_threshold,
                    math.ceil(self.reset_timeout * 1000),
                    self._lifetime_ms,
                ],
            )
            code, failures, opened = (int(x) for x in reply)
        except StoreUnavailable as error:
            self._shared.failed(time.monotonic(), error.__cause__ or error)
            return
        except (TypeError, ValueError):
            return
        if opened:
            self._opened += 1
            self._local_open_until = time.monotonic() + self.reset_timeout
            logger.warning("circuit %r opened after %d failure(s) (shared)", self.name, failures)
        self._seen(code, failures)

    async def _enter(self) -> tuple[bool, bool] | None:
        """Admit a call: ``(trial, clean)`` from the store, ``None`` when the fallback did."""
        state = self._shared
        error: BaseException | None = None
        if state.reachable(time.monotonic()):
            try:
                return await self._admit()
            except StoreUnavailable as exc:
                error = exc.__cause__ or exc
                state.failed(time.monotonic(), error)
        self._fallbacks += 1
        if self._fallback is None:
            raise state.refuse("circuit breaker", error)
        self._fallback._before()
        return None

    async def _exit(self, admitted: tuple[bool, bool] | None, exc: BaseException | None) -> None:
        if exc is None:
            self._successes += 1
        if admitted is None:
            fallback = self._fallback
            assert fallback is not None
            if exc is None:
                fallback.record_success()
            elif isinstance(exc, self._failure_on):
                fallback.record_failure()
            return
        trial, clean = admitted
        if exc is None:
            if not clean:
                await self._verdict(1, trial)
        elif isinstance(exc, self._failure_on):
            await self._verdict(0, trial)
        elif trial:
            await self._verdict(2, trial)

    async def call(
        self, func: Callable[_P, Awaitable[_R]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """Call ``func(*args, **kwargs)`` through the fleet's breaker.

        Raises:
            CircuitBreakerError: If the circuit is open (or half-open with its trials out).
            ResourceLimitError: If the store is unavailable and the breaker fails closed.
        """
        admitted = await self._enter()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            await asyncio.shield(self._exit(admitted, exc))
            raise
        await self._exit(admitted, None)
        return result

    async def __aenter__(self) -> SharedCircuitBreaker:
        admitted = await self._enter()
        self._entered.setdefault(asyncio.current_task(), []).append(admitted)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        admitted = self._pop_entered()
        await asyncio.shield(self._exit(admitted, exc))

    def record_success(self) -> asyncio.Task[None]:  # type: ignore[override]
        """Write a success verdict to the store (closes a half-open circuit).

        Returns:
            The task writing it (already started).
        """
        self._successes += 1
        return asyncio.get_running_loop().create_task(self._verdict(1, True))

    def record_failure(self) -> asyncio.Task[None]:  # type: ignore[override]
        """Write a failure verdict to the store (opens it at the threshold).

        Returns:
            The task writing it (already started).
        """
        return asyncio.get_running_loop().create_task(self._verdict(0, False))

    def reset(self) -> asyncio.Task[None]:  # type: ignore[override]
        """Close the fleet's circuit and forget its failures.

        Returns:
            The task resetting the shared state (already started).
        """
        self._local_open_until = -math.inf
        self._failures = 0
        self._trials = 0
        self._set_state(CircuitState.CLOSED)
        return asyncio.get_running_loop().create_task(self._delete())

    async def _delete(self) -> None:
        try:
            await self._shared.store.command("DEL", self._key[0])
        except StoreUnavailable as error:
            self._shared.failed(time.monotonic(), error.__cause__ or error)

    def stats(self) -> SharedCircuitBreakerStats:  # type: ignore[override]
        """Counts to graph, with the store's round trips and errors.

        Returns:
            A :class:`SharedCircuitBreakerStats` snapshot.
        """
        return SharedCircuitBreakerStats(
            state=self._state,
            failures=self._failures,
            calls=self._calls,
            successes=self._successes,
            rejected=self._rejected,
            opened=self._opened,
            round_trips=self._round_trips,
            store_errors=self._shared.store_errors,
            fallbacks=self._fallbacks,
        )
