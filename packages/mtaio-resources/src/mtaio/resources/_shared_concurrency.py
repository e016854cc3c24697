"""A concurrency limit shared by every process through Redis: permits held under leases.

The holders are a sorted set ``{prefix:name}:holders``: member = one permit's id, score = the
server time (ms) its lease ends. Acquiring is one script: drop the expired leases, count,
add a holder if under the limit. A process renews the leases of the permits it holds every
``lease / 3`` seconds (one script for all of them), so a live holder keeps its permit for as
long as it likes, and a process that dies (SIGKILL, a lost host) loses its permits when its
leases run out: a crash never leaks capacity for good.

Waiting: a refused caller blocks on ``BLPOP`` of the list ``{prefix:name}:free``, into which
every release pushes one signal (the list is trimmed to ``limit`` entries), so one waiter in
the fleet wakes per release and tries again; nobody polls. The block is bounded by the time
to the earliest lease's end (a dead holder's permit comes back then, with no signal) and by
the store's timeout, so a lost signal costs at most that long.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, final

from mtaio.exceptions import (
    ConfigurationError,
    ResourceLockError,
    ResourceTimeoutError,
    require_positive,
)

from ._checks import require_timeout
from ._concurrency import ConcurrencyLimiter
from ._store import SharedState, StoreUnavailable

__all__ = ("SharedConcurrencyLimiter", "SharedConcurrencyStats")

logger = logging.getLogger("mtaio.resources")

# KEYS: holders, free. ARGV: limit, lease (ms), id. Reply: {granted, holders, ms to the
# earliest lease's end (when refused)}.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
  return {1, count + 1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local left = lease
if first[2] ~= nil then
  left = (tonumber(first[2]) or (now + lease)) - now
end
return {0, count, left}
"""

# KEYS: holders. ARGV: lease (ms), ids... Reply: the ids whose lease was already gone.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
  local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or '')
  if score ~= nil and score > now then
    redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
    table.insert(lost, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return lost
"""

# KEYS: holders, free. ARGV: id, limit, lease (ms). Signals a waiter only if it held one.
RELEASE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + 1000)
end
return removed
"""

_LOCAL = "local"  # the id of a permit taken from the fail-open fallback
_GONE = "gone:"  # marks a held permit whose lease ran out in the store


@final
@dataclass(frozen=True, slots=True)
class SharedConcurrencyStats:
    """A snapshot of a concurrency limiter on a shared store, from ``stats()``.

    Attributes:
        limit: The most holders at once across the fleet.
        borrowed: Permits this process holds.
        waiting: Tasks of this process waiting for a permit.
        acquired: Permits this process was granted.
        fleet_borrowed: Holders across the fleet at this process's last answer.
        round_trips: Calls this object made to the store.
        store_errors: Calls that failed.
        fallbacks: Requests decided without the store.
        lost: Permits whose lease ran out while held (the process stalled longer than the
            lease): another process may have been admitted in their place.
    """

    limit: int
    borrowed: int
    waiting: int
    acquired: int
    fleet_borrowed: int
    round_trips: int
    store_errors: int
    fallbacks: int
    lost: int


class SharedConcurrencyLimiter(ConcurrencyLimiter):
    """A :class:`~mtaio.resources.ConcurrencyLimiter` whose permits live in a shared store.

    Made by ``ConcurrencyLimiter(limit, store=RedisStore(...), name=..., lease=5.0)``.
    ``try_acquire`` is awaited; ``release()`` starts the release at once and returns it as a
    task (await it to know it reached the store; ``async with`` does). :meth:`close` gives
    back whatever this process holds.

    .. versionadded:: 0.2
    """

    __slots__ = (
        "_fallback",
        "_fallbacks",
        "_fleet",
        "_held",
        "_keys",
        "_lease_ms",
        "_lost",
        "_pending",
        "_renewer",
        "_round_trips",
        "_shared",
        "_shared_acquired",
        "_shared_waiting",
        "lease",
    )

    _fallback: ConcurrencyLimiter | None
    _fallbacks: int
    _fleet: int
    _held: list[str]
    _keys: list[str]
    _lease_ms: int
    _lost: int
    _pending: set[asyncio.Task[Any]]
    _renewer: asyncio.Task[None] | None
    _round_trips: int
    _shared: SharedState
    _shared_acquired: int
    _shared_waiting: int
    lease: float

    @classmethod
    def _create(
        cls,
        limit: int,
        store: object,
        name: object,
        lease: float,
        on_store_error: object,
        expected_replicas: object,
    ) -> SharedConcurrencyLimiter:
        self = object.__new__(cls)
        self._setup(limit)
        self._shared = state = SharedState(store, name, on_store_error, expected_replicas)
        self.lease = float(require_positive("lease", lease))
        if math.isinf(self.lease) or self.lease < 0.03:
            raise ConfigurationError(f"lease must be finite and at least 0.03 s, got {lease!r}")
        self._lease_ms = math.ceil(self.lease * 1000)
        self._keys = [state.store.key(state.name, "holders"), state.store.key(state.name, "free")]
        self._held = []
        self._pending = set()
        self._renewer = None
        self._fallback = (
            ConcurrencyLimiter(max(1, limit // state.expected_replicas))
            if state.policy == "fail_open"
            else None
        )
        self._fallbacks = 0
        self._fleet = 0
        self._lost = 0
        self._round_trips = 0
        self._shared_acquired = 0
        self._shared_waiting = 0
        return self

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimiter(limit={self._limit}, name={self._shared.name!r}, "
            f"borrowed={len(self._held)}, store={self._shared.store!r})"
        )

    @property
    def name(self) -> str:
        """The name of the shared state."""
        return self._shared.name

    @property
    def borrowed(self) -> int:
        """Permits this process holds."""
        return len(self._held)

    @property
    def waiting(self) -> int:
        """Tasks of this process waiting for a permit."""
        return self._shared_waiting

    def locked(self) -> bool:
        """Whether the fleet was full at this process's last answer from the store."""
        return self._fleet >= self._limit

    # -- the store -----------------------------------------------------------------------

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self._round_trips += 1
        return await self._shared.store.run(script, keys, args)

    async def _try_store(self) -> tuple[str | None, float]:
        """One attempt: ``(id, 0)`` when granted, ``(None, seconds to wait at most)``.

        Raises:
            StoreUnavailable: If the store could not answer.
        """
        permit = uuid.uuid4().hex
        call = asyncio.ensure_future(
            self._run(ACQUIRE, self._keys, [self._limit, self._lease_ms, permit])
        )
        try:
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            # The script may still grant: give such a permit straight back.
            call.add_done_callback(lambda done: self._abandon(done, permit))
            raise
        try:
            granted, fleet, left = int(reply[0]), int(reply[1]), float(reply[2])
        except (TypeError, ValueError, IndexError) as error:
            raise StoreUnavailable(f"malformed reply from the store: {reply!r}") from error
        self._fleet = fleet
        if granted == 1:
            self._grant(permit)
            return permit, 0.0
        return None, max(0.0, left / 1000)

    def _abandon(self, done: asyncio.Future[Any], permit: str) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        reply = done.result()
        if isinstance(reply, list) and reply and reply[0] == 1:
            self._background(self._release_remote(permit))

    def _grant(self, permit: str) -> None:
        self._held.append(permit)
        self._shared_acquired += 1
        if permit != _LOCAL and (self._renewer is None or self._renewer.done()):
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        """Renew the leases of the permits held, every lease / 3, while any is held."""
        state = self._shared
        while True:
            await asyncio.sleep(self.lease / 3)
            ids = [p for p in self._held if p != _LOCAL and not p.startswith(_GONE)]
            if not ids:
                return
            try:
                lost = await self._run(RENEW, self._keys[:1], [self._lease_ms, *ids])
            except StoreUnavailable as error:
                state.failed(time.monotonic(), error.__cause__ or error)
                continue
            state.succeeded()
            if isinstance(lost, list) and lost:
                gone = {p.decode() if isinstance(p, bytes) else str(p) for p in lost}
                # still held by the caller (its release stays balanced), never renewed again
                self._held = [_GONE + p if p in gone else p for p in self._held]
                self._lost += len(lost)
                logger.warning(
                    "%r: %d permit lease(s) ran out while held (the process stalled longer "
                    "than lease=%s s)",
                    state.name,
                    len(lost),
                    self.lease,
                )

    async def _release_remote(self, permit: str) -> None:
        try:
            await self._run(RELEASE, self._keys, [permit, self._limit, self._lease_ms])
        except StoreUnavailable as error:
            # The lease ends on its own: the permit comes back within `lease` seconds.
            self._shared.failed(time.monotonic(), error.__cause__ or error)

    def _background(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _wait_signal(self, seconds: float) -> None:
        store = self._shared.store
        # bounded by the socket timeout: a blocking read longer than it would be cut off
        block = min(seconds, store.timeout * 0.8, self.lease)
        if block < 0.01:
            await asyncio.sleep(block)
            return
        self._round_trips += 1
        await store.command("BLPOP", self._keys[1], round(block, 3), limit=block + store.timeout)

    # -- the API -------------------------------------------------------------------------

    async def acquire(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Take a permit from the fleet's limit, waiting if none is free.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as needed.

        Raises:
            ResourceTimeoutError: If ``timeout`` passes first; no permit is held then.
            ResourceLimitError: If the store is unavailable and the limiter fails closed.
        """
        patience = require_timeout("timeout", timeout)
        loop = asyncio.get_running_loop()
        deadline = None if patience is None or patience == math.inf else loop.time() + patience
        state = self._shared
        self._shared_waiting += 1
        try:
            while True:
                error: BaseException | None = None
                if state.reachable(time.monotonic()):
                    try:
                        permit, hint = await self._try_store()
                    except StoreUnavailable as exc:
                        error = exc.__cause__ or exc
                        state.failed(time.monotonic(), error)
                    else:
                        state.succeeded()
                        if permit is not None:
                            return
                        left = None if deadline is None else deadline - loop.time()
                        if left is not None and left <= 0:
                            break
                        try:
                            await self._wait_signal(hint if left is None else min(hint, left))
                        except StoreUnavailable as exc:
                            state.failed(time.monotonic(), exc.__cause__ or exc)
                        continue
                self._fallbacks += 1
                if self._fallback is None:
                    raise state.refuse("concurrency limiter", error)
                left = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    await self._fallback.acquire(left)
                except ResourceTimeoutError:
                    break
                self._grant(_LOCAL)
                return
        finally:
            self._shared_waiting -= 1
        raise ResourceTimeoutError(
            f"concurrency limiter {state.name!r}: no permit free within {patience!r} s "
            f"(limit={self._limit})",
            timeout=patience,
        )

    async def try_acquire(self) -> bool:  # type: ignore[override]
        """Take a permit if the fleet has one free now (one round trip).

        Returns:
            Whether a permit was taken (give it back with :meth:`release`).

        Raises:
            ResourceLimitError: If the store is unavailable and the limiter fails closed.
        """
        state = self._shared
        error: BaseException | None = None
        if state.reachable(time.monotonic()):
            try:
                permit, _ = await self._try_store()
            except StoreUnavailable as exc:
                error = exc.__cause__ or exc
                state.failed(time.monotonic(), error)
            else:
                state.succeeded()
                return permit is not None
        self._fallbacks += 1
        if self._fallback is None:
            raise state.refuse("concurrency limiter", error)
        if self._fallback.try_acquire():
            self._grant(_LOCAL)
            return True
        return False

    def release(self) -> asyncio.Task[None]:  # type: ignore[override]
        """Give a permit back: at once here, in the store by the returned task.

        Returns:
            The task that removes the permit from the store (already started).

        Raises:
            ResourceLockError: If this process holds no permit.
        """
        if not self._held:
            raise ResourceLockError("ConcurrencyLimiter.release() called more often than acquire()")
        permit = self._held.pop()
        if permit.startswith(_GONE):
            return self._background(_completed())  # its lease is gone from the store already
        if permit == _LOCAL:
            assert self._fallback is not None
            self._fallback.release()
            return self._background(_completed())
        return self._background(self._release_remote(permit))

    async def close(self) -> None:
        """Give back every permit this process holds and stop renewing (idempotent)."""
        while self._held:
            await self.release()
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def stats(self) -> SharedConcurrencyStats:  # type: ignore[override]
        """Counts to graph, with the store's round trips and errors.

        Returns:
            A :class:`SharedConcurrencyStats` snapshot.
        """
        return SharedConcurrencyStats(
            limit=self._limit,
            borrowed=len(self._held),
            waiting=self._shared_waiting,
            acquired=self._shared_acquired,
            fleet_borrowed=self._fleet,
            round_trips=self._round_trips,
            store_errors=self._shared.store_errors,
            fallbacks=self._fallbacks,
            lost=self._lost,
        )

    async def __aenter__(self) -> SharedConcurrencyLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def _completed() -> None:
    return None
