"""Rate limits shared by every process through Redis: GCRA on the server's clock.

The state of one rate is one number, its theoretical arrival time (TAT): the moment the
bucket will be full again. A request of ``n`` tokens is granted when
``max(TAT, now) + need - now <= tau`` (``tau = burst * interval``, ``interval = per / rate``,
``need = n * interval``, or the whole ``tau`` for a borrowing request larger than the
bucket), and moves the TAT on by ``n * interval``. This is exactly the token bucket of
:class:`~mtaio.resources.RateLimiter` (level = ``burst - (TAT - now) / interval``), held in
one key that expires when the bucket is full again: idle keys cost nothing.

One round trip per grant: the script *reserves* the tokens and answers how long the caller
must wait for them (0: at once). The caller sleeps that long locally and proceeds; nobody
polls. A caller given a ``timeout`` asks for a reservation no later than that, so a wait
known to be too long fails at once, having taken nothing. A caller cancelled while it
sleeps hands its reservation back (the TAT moves back by what it took).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, final

from mtaio.exceptions import ConfigurationTypeError, ResourceTimeoutError

from ._checks import require_timeout
from ._rate import KeyedRateLimiter, Limit, RateLimiter
from ._store import SharedState, StoreUnavailable

__all__ = (
    "SharedKeyedRateLimiter",
    "SharedRateLimiter",
    "SharedRateLimiterStats",
)

_K = TypeVar("_K", bound=Hashable)

logger = logging.getLogger("mtaio.resources")

# KEYS: one per rate. ARGV: tokens, max wait (us, -1: any), then interval and tau (us) per
# rate. Reply: {granted (0/1), wait (us), tokens left in the first bucket, server time
# (us)}. Any value read back that is not a number is treated as a missing key: a corrupt
# key resets, never breaks.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tokens = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local wait = 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[1 + 2 * i])
  local tau = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '')
  if tat == nil or tat < now then tat = now end
  local need = tokens * interval
  if need > tau then need = tau end
  local w = tat + need - tau - now
  if w > wait then wait = w end
  tats[i] = tat + tokens * interval
end
local first_interval = tonumber(ARGV[3])
local first_tau = tonumber(ARGV[4])
if max_wait >= 0 and wait > max_wait then
  local tat = tats[1] - tokens * first_interval
  local left = tostring((first_tau - (tat - now)) / first_interval)
  return {0, string.format('%.0f', wait), left, string.format('%.0f', now)}
end
for i = 1, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
end
local left = tostring((first_tau - (tats[1] - now)) / first_interval)
return {1, string.format('%.0f', wait), left, string.format('%.0f', now)}
"""

# KEYS: one per rate. ARGV: tokens, then interval per rate. Moves each TAT back by what a
# cancelled reservation took, never before now.
REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tokens = tonumber(ARGV[1])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '')
  if tat ~= nil then
    tat = tat - tokens * tonumber(ARGV[1 + i])
    if tat > now then
      local ttl = math.ceil((tat - now) / 1000) + 1
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', ttl)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return 1
"""


@final
@dataclass(frozen=True, slots=True)
class SharedRateLimiterStats:
    """A snapshot of a rate limiter on a shared store, from ``stats()``.

    Attributes:
        rate: Tokens added per second (of the first rate).
        burst: The bucket's capacity (of the first rate).
        available: Tokens the first bucket held after this process's last answer from the
            store (the fleet's figure, as of then).
        waiting: Tasks of this process waiting for their tokens.
        acquired: Requests this process was granted.
        round_trips: Calls this object made to the store.
        store_errors: Calls that failed (unreachable, timed out).
        fallbacks: Requests decided without the store (refused when failing closed,
            served by the local limiter when failing open).
    """

    rate: float
    burst: float
    available: float
    waiting: int
    acquired: int
    round_trips: int
    store_errors: int
    fallbacks: int


def _wire(limits: list[tuple[float, float]]) -> list[str]:
    """Per rate: the interval (us per token) and tau (us of burst), as script arguments."""
    out: list[str] = []
    for per_second, capacity in limits:
        interval = 1e6 / per_second
        out += [repr(interval), repr(capacity * interval)]
    return out


def _number(value: object) -> float:
    # Replies are bytes or str; anything else (or junk) is a protocol error.
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    result = float(value)  # type: ignore[arg-type]
    if math.isnan(result):
        raise ValueError("NaN in a reply")
    return result


class _Engine:
    """The shared part of one rate limit (a limiter, or one key of a keyed limiter)."""

    __slots__ = (
        "_intervals",
        "_keys",
        "_try_one",
        "_wired",
        "available",
        "local",
        "round_trips",
        "server_now",
        "state",
    )

    def __init__(
        self,
        state: SharedState,
        keys: list[str],
        limits: list[tuple[float, float]],
        local: RateLimiter | None,
    ) -> None:
        self.state = state
        self._keys = keys
        self._wired = _wire(limits)
        self._try_one = ["1.0", "0", *self._wired]
        self._intervals = [repr(1e6 / per_second) for per_second, _ in limits]
        self.local = local
        self.available = limits[0][1]
        self.round_trips = 0
        #: The server's clock (TIME, in us, as sent) at the last answer: when it decided.
        self.server_now: object = None

    async def reserve(self, tokens: float, max_wait: float | None) -> float | None:
        """Reserve ``tokens``: the seconds to wait for them, or ``None`` if refused.

        Raises:
            StoreUnavailable: If the store could not answer.
        """
        self.round_trips += 1
        if tokens == 1.0 and max_wait == 0.0:
            args = self._try_one  # the common try_acquire(): its arguments made once
        else:
            wait_us = -1 if max_wait is None else max_wait * 1e6
            args = [repr(float(tokens)), repr(wait_us), *self._wired]
        reply = await self.state.store.run(GCRA, self._keys, args)
        try:
            granted, wait, available, server_now = reply
            self.available = _number(available)
            self.server_now = server_now
            if granted == 1 and wait == b"0":
                return 0.0
            wait_s = max(0.0, _number(wait) / 1e6)
        except (TypeError, ValueError) as error:
            raise StoreUnavailable(f"malformed reply from the store: {reply!r}") from error
        return wait_s if granted == 1 else None

    async def refund(self, tokens: float) -> None:
        try:
            self.round_trips += 1
            await self.state.store.run(REFUND, self._keys, [repr(float(tokens)), *self._intervals])
        except StoreUnavailable:
            pass  # the tokens stay spent: a little below the rate, never above


class SharedRateLimiter(RateLimiter):
    """A :class:`~mtaio.resources.RateLimiter` whose bucket lives in a shared store.

    Made by ``RateLimiter(rate, burst, store=RedisStore(...), name=...)``; see there.
    ``try_acquire`` must be awaited here (the answer comes from the store).

    .. versionadded:: 0.2
    """

    __slots__ = ("_engine", "_fallbacks", "_name", "_shared_acquired", "_shared_waiting")

    _engine: _Engine
    _name: str
    _fallbacks: int
    _shared_acquired: int
    _shared_waiting: int

    @classmethod
    def _create(
        cls,
        rate: float,
        burst: float | None,
        per: float,
        limits: Iterable[Limit],
        oversize: str,
        clock: Any,
        store: object,
        name: object,
        on_store_error: object,
        expected_replicas: object,
    ) -> SharedRateLimiter:
        self = object.__new__(cls)
        self._setup(rate, burst, per, limits, oversize, clock)
        state = SharedState(store, name, on_store_error, expected_replicas)
        self._attach(state, state.name, oversize)
        return self

    def _attach(self, state: SharedState, tag: str, oversize: str) -> None:
        """Bind this (set-up) limiter to the store, its keys under the hash tag ``tag``."""
        self._name = state.name
        rates = [(self._per_second, self._capacity)]
        rates += [(b.per_second, b.capacity) for b in self._extra]
        keys = [state.store.key(tag, "rate", str(i)) for i in range(len(rates))]
        self._engine = _Engine(state, keys, rates, _fallback(self, state, oversize))
        self._fallbacks = 0
        self._shared_acquired = 0
        self._shared_waiting = 0

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self.rate!r}/s, burst={self._capacity!r}, "
            f"name={self._name!r}, store={self._engine.state.store!r})"
        )

    @property
    def name(self) -> str:
        """The name of the shared state."""
        return self._name

    async def acquire(self, tokens: float = 1.0, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until ``tokens`` are granted by the shared bucket, then proceed.

        Args:
            tokens: How many tokens.
            timeout: Seconds to wait at most; a wait the store says is longer fails at once.

        Raises:
            ResourceTimeoutError: If the tokens cannot be had within ``timeout``.
            ResourceLimitError: If the store is unavailable and the limiter fails closed.
        """
        wait = await self.reserve(tokens, timeout)
        if wait > 0:
            self._shared_waiting += 1
            try:
                await asyncio.sleep(wait)
            except BaseException:
                self._shared_acquired -= 1
                await asyncio.shield(self._engine.refund(tokens))
                raise
            finally:
                self._shared_waiting -= 1

    async def reserve(self, tokens: float = 1.0, timeout: float | None = None) -> float:  # noqa: ASYNC109
        """Take ``tokens`` now for later: the seconds to wait before using them (0: now).

        :meth:`acquire` is this followed by the sleep. Use it to schedule the work rather
        than wait for it; the tokens are spent whether or not they are used.

        Args:
            tokens: How many tokens.
            timeout: The longest wait to accept; a longer one fails at once.

        Returns:
            The seconds until the tokens may be used, as the server computed them.

        Raises:
            ResourceTimeoutError: If the wait would be longer than ``timeout``; nothing is
                taken then.
            ResourceLimitError: If the store is unavailable and the limiter fails closed.
        """
        self._validate(tokens)
        patience = require_timeout("timeout", timeout)
        if patience == math.inf:
            patience = None
        wait = await self._decide(tokens, patience)
        if wait is None:
            raise ResourceTimeoutError(
                f"rate limiter {self._name!r}: {tokens!r} token(s) not available within "
                f"{patience!r} s",
                timeout=patience,
            )
        return wait

    async def try_acquire(self, tokens: float = 1.0) -> bool:  # type: ignore[override]
        """Take ``tokens`` if the shared bucket holds them now (one round trip).

        Returns:
            Whether the tokens were taken.

        Raises:
            ResourceLimitError: If the store is unavailable and the limiter fails closed.
        """
        self._validate(tokens)
        return await self._decide(tokens, 0.0) is not None

    async def _decide(self, tokens: float, max_wait: float | None) -> float | None:
        engine = self._engine
        state = engine.state
        now = time.monotonic()
        error: BaseException | None = None
        if state.reachable(now):
            try:
                wait = await engine.reserve(tokens, max_wait)
            except StoreUnavailable as exc:
                state.failed(time.monotonic(), exc.__cause__ or exc)
                error = exc.__cause__ or exc
            else:
                state.succeeded()
                if wait is not None:
                    self._shared_acquired += 1
                return wait
        self._fallbacks += 1
        local = engine.local
        if local is None:
            raise state.refuse("rate limiter", error)
        if max_wait == 0.0:
            return 0.0 if local.try_acquire(tokens) else None
        try:
            await local.acquire(tokens, max_wait)
        except ResourceTimeoutError:
            return None
        return 0.0

    def available(self) -> float:
        """Tokens the first bucket held at this process's last answer from the store."""
        return self._engine.available

    def stats(self) -> SharedRateLimiterStats:  # type: ignore[override]
        """Counts to graph, with the store's round trips and errors.

        Returns:
            A :class:`SharedRateLimiterStats` snapshot.
        """
        return SharedRateLimiterStats(
            rate=self._per_second,
            burst=self._capacity,
            available=self._engine.available,
            waiting=self._shared_waiting,
            acquired=self._shared_acquired,
            round_trips=self._engine.round_trips,
            store_errors=self._engine.state.store_errors,
            fallbacks=self._fallbacks,
        )

    async def __aenter__(self) -> SharedRateLimiter:
        await self.acquire()
        return self


def _fallback(limiter: RateLimiter, state: SharedState, oversize: str) -> RateLimiter | None:
    """The local limiter a fail-open object uses: each rate and burst over the replicas."""
    if state.policy != "fail_open":
        return None
    share = state.expected_replicas
    extra = [Limit(b.per_second / share, 1.0, max(1.0, b.capacity / share)) for b in limiter._extra]
    return RateLimiter(
        limiter._per_second / share,
        max(1.0, limiter._capacity / share),
        limits=extra,
        oversize="borrow" if oversize == "borrow" else "error",
    )


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "backslashreplace")
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise ConfigurationTypeError(f"key must be a str, bytes or int on a shared store, got {key!r}")


class SharedKeyedRateLimiter(KeyedRateLimiter[_K], Generic[_K]):
    """A :class:`~mtaio.resources.KeyedRateLimiter` whose buckets live in a shared store.

    Made by ``KeyedRateLimiter(rate, burst, store=RedisStore(...), name=...)``. Each key's
    bucket is one Redis key per rate, under its own hash tag ``{prefix:name:key}`` (so the
    keys of one limiter spread over a cluster), expiring when the bucket is full again.
    Keys are ``str``, ``bytes`` or ``int``.

    .. versionadded:: 0.2
    """

    __slots__ = ("_limiter_args", "_shared", "_shared_stats")

    _shared: SharedState
    _limiter_args: tuple[Any, ...]
    _shared_stats: list[int]

    @classmethod
    def _create_keyed(
        cls,
        rate: float,
        burst: float | None,
        per: float,
        limits: tuple[Limit, ...],
        max_keys: int,
        clock: Any,
        store: object,
        name: object,
        on_store_error: object,
        expected_replicas: object,
    ) -> SharedKeyedRateLimiter[_K]:
        self: SharedKeyedRateLimiter[_K] = object.__new__(cls)
        self._setup(rate, burst, per, limits, max_keys, clock)
        self._shared = SharedState(store, name, on_store_error, expected_replicas)
        self._limiter_args = (rate, burst, per, limits, "error", clock)
        self._shared_stats = [0, 0, 0]  # acquired, round trips, fallbacks of dropped engines
        return self

    def __repr__(self) -> str:
        return (
            f"KeyedRateLimiter(name={self._shared.name!r}, store={self._shared.store!r}, "
            f"keys={len(self._buckets)})"
        )

    def _bucket(self, key: _K) -> RateLimiter:
        # The local LRU holds the per-key engines (their key names, their fallback bucket);
        # the state itself is in the store.
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is not None:
            buckets.move_to_end(key)
            return bucket
        text = _key_text(key)
        if len(buckets) >= self._max_keys:
            _, old = buckets.popitem(last=False)
            if isinstance(old, SharedRateLimiter):  # keep its counts in the totals
                totals = self._shared_stats
                totals[0] += old._shared_acquired
                totals[1] += old._engine.round_trips
                totals[2] += old._fallbacks
        limiter: SharedRateLimiter = object.__new__(SharedRateLimiter)
        limiter._setup(*self._limiter_args)
        limiter._attach(self._shared, f"{self._shared.name}:{text}", "error")
        buckets[key] = limiter
        return limiter

    async def try_acquire(self, key: _K, tokens: float = 1.0) -> bool:  # type: ignore[override]
        """Take ``tokens`` from ``key``'s shared bucket if it holds them now.

        Returns:
            Whether they were taken.
        """
        bucket = self._bucket(key)
        assert isinstance(bucket, SharedRateLimiter)
        return await bucket.try_acquire(tokens)

    def stats(self) -> Any:
        """Counts to graph: the keyed figures summed over the keys this process used.

        Returns:
            A :class:`SharedRateLimiterStats` summed over the keys this process used
            (``rate`` and ``burst`` are every key's; ``available`` is not known).
        """
        buckets = [b for b in self._buckets.values() if isinstance(b, SharedRateLimiter)]
        probe = self._factory()
        return SharedRateLimiterStats(
            rate=probe.rate,
            burst=probe.burst,
            available=math.nan,
            waiting=sum(b._shared_waiting for b in buckets),
            acquired=self._shared_stats[0] + sum(b._shared_acquired for b in buckets),
            round_trips=self._shared_stats[1] + sum(b._engine.round_trips for b in buckets),
            store_errors=self._shared.store_errors,
            fallbacks=self._shared_stats[2] + sum(b._fallbacks for b in buckets),
        )
