"""The shared limiters and breaker on one real redis-server, within one process."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import pytest

from mtaio.exceptions import (
    CircuitBreakerError,
    ConfigurationError,
    DependencyError,
    ResourceLimitError,
    ResourceLockError,
    ResourceTimeoutError,
)
from mtaio.resources import (
    CircuitBreaker,
    CircuitState,
    ConcurrencyLimiter,
    KeyedRateLimiter,
    Limit,
    RateLimiter,
    RedisStore,
    SharedCircuitBreaker,
    SharedConcurrencyLimiter,
    SharedKeyedRateLimiter,
    SharedRateLimiter,
)
from mtaio.testing import RedisServer


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


async def test_processes_building_the_same_name_share_one_bucket(store: RedisStore) -> None:
    a = RateLimiter(1, burst=3, store=store, name="payments")
    b = RateLimiter(1, burst=3, store=store, name="payments")
    other = RateLimiter(1, burst=3, store=store, name="search")
    assert isinstance(a, SharedRateLimiter)
    assert type(a).__mro__[1] is RateLimiter
    assert [await a.try_acquire(), await b.try_acquire(), await a.try_acquire()] == [True] * 3
    assert not await b.try_acquire()
    assert await other.try_acquire()  # another name, another bucket
    stats = a.stats()
    assert (stats.acquired, stats.round_trips, stats.store_errors) == (2, 2, 0)
    assert a.available() == pytest.approx(0, abs=0.1)
    assert a.name == "payments" and "name='payments'" in repr(a)
    # one key per rate under the object's hash tag, expiring when the bucket is full again
    keys = sorted(_text(k) for k in await store.client.keys("*"))
    assert keys == ["{mtaio:payments}:rate:0", "{mtaio:search}:rate:0"]
    ttl = await store.client.pttl("{mtaio:payments}:rate:0")
    assert 0 < ttl <= 3001


async def test_a_waiter_sleeps_the_time_the_server_says(store: RedisStore) -> None:
    limiter = RateLimiter(20, burst=1, store=store, name="pace")
    start = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 1.0  # four waits of 50 ms
    assert limiter.stats().round_trips == 5  # one per grant: nobody polled


async def test_a_wait_longer_than_the_timeout_fails_at_once_taking_nothing(
    store: RedisStore,
) -> None:
    limiter = RateLimiter(1, burst=1, store=store, name="slow")
    await limiter.acquire()
    start = time.monotonic()
    with pytest.raises(ResourceTimeoutError, match=r"within 0\.5 s") as info:
        await limiter.acquire(timeout=0.5)
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - start < 0.4
    fast = RateLimiter(1000, burst=1, store=store, name="fast")
    await fast.acquire()
    await fast.acquire(timeout=1.0)  # a short wait within the timeout is slept
    await fast.acquire(timeout=float("inf"))


async def test_a_cancelled_sleeper_hands_its_reservation_back(store: RedisStore) -> None:
    limiter = RateLimiter(2, burst=1, store=store, name="refund")
    await limiter.acquire()
    sleeper = asyncio.create_task(limiter.acquire())  # reserves the token due in 0.5 s
    await asyncio.sleep(0.05)
    assert limiter.stats().waiting == 1
    sleeper.cancel()
    await asyncio.gather(sleeper, return_exceptions=True)
    assert limiter.stats().waiting == 0
    await asyncio.sleep(0.5)
    assert await limiter.try_acquire()  # the refunded token is there again


async def test_several_rates_and_borrowing(store: RedisStore) -> None:
    limiter = RateLimiter(100, burst=5, limits=[Limit(3, per=60, burst=3)], store=store, name="m")
    assert [await limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert len(await store.client.keys("{mtaio:m}:*")) == 2
    borrow = RateLimiter(10, burst=2, oversize="borrow", store=store, name="borrow")
    await borrow.acquire(4)  # a full bucket, then debt
    assert not await borrow.try_acquire()


async def test_scripts_reload_after_a_flush_and_junk_in_a_key_resets_it(
    store: RedisStore,
) -> None:
    limiter = RateLimiter(10, burst=2, store=store, name="flush")
    assert await limiter.try_acquire()
    await store.client.script_flush()  # NOSCRIPT on the next EVALSHA: loaded again
    assert await limiter.try_acquire()
    await store.client.set("{mtaio:flush}:rate:0", "not a number")
    assert await limiter.try_acquire()  # a corrupt key counts as a full bucket
    assert await store.client.get("{mtaio:flush}:rate:0") != b"not a number"


async def test_keyed_buckets_each_under_their_own_tag(store: RedisStore) -> None:
    users: KeyedRateLimiter[str | int] = KeyedRateLimiter(
        10, burst=1, store=store, name="users", max_keys=2
    )
    assert isinstance(users, SharedKeyedRateLimiter)
    assert await users.try_acquire("alice")
    assert not await users.try_acquire("alice")
    assert await users.try_acquire(7)
    assert await users.try_acquire(b"bob")  # beyond max_keys: the oldest engine is dropped
    keys = sorted(_text(k) for k in await store.client.keys("*"))
    assert keys == [
        "{mtaio:users:7}:rate:0",
        "{mtaio:users:alice}:rate:0",
        "{mtaio:users:bob}:rate:0",
    ]
    await users.acquire("alice", timeout=1)
    with pytest.raises(ConfigurationError, match="key"):
        await users.try_acquire(("a", 1))
    await asyncio.sleep(0.15)  # every bucket full again (burst 1 at 10/s): the keys are gone
    assert await store.client.keys("*") == []
    stats = users.stats()
    assert stats.acquired >= 3 and stats.round_trips >= 4
    assert "name='users'" in repr(users)


def test_a_shared_object_needs_a_name_and_a_store() -> None:
    store = RedisStore("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="name is required"):
        RateLimiter(1, store=store)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="name is required"):
        ConcurrencyLimiter(1, store=store)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="braces"):
        CircuitBreaker(store=store, name="a{b}")
    with pytest.raises(ConfigurationError, match="store must be a RedisStore"):
        RateLimiter(1, store="redis://x", name="x")  # type: ignore[call-overload]
    assert repr(store).startswith("RedisStore(prefix='mtaio'")


def test_the_store_names_the_extra_without_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(DependencyError, match=r"mtaio-resources\[redis\]"):
        RedisStore("redis://localhost")


async def test_a_client_given_stays_the_callers(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server.url)
    async with RedisStore(client, prefix="app") as store:
        assert store.client is client
        limiter = RateLimiter(5, store=store, name="x")
        assert await limiter.try_acquire()
        assert await client.exists("{app:x}:rate:0") == 1
    assert await client.ping()  # not closed by the store
    await client.aclose()


async def test_fail_closed_then_recovery(redis_server: RedisServer) -> None:
    async with RedisStore(redis_server.url, timeout=0.3) as store:
        limiter = RateLimiter(100, burst=10, store=store, name="fc")
        permits = ConcurrencyLimiter(2, store=store, name="fcp")
        breaker = CircuitBreaker(store=store, name="fcb")
        assert await limiter.try_acquire()
        redis_server.kill()
        start = time.monotonic()
        with pytest.raises(ResourceLimitError, match="failing closed"):
            await limiter.acquire()
        with pytest.raises(ResourceLimitError, match="failing closed"):
            await limiter.try_acquire()  # backing off: refused without a round trip
        with pytest.raises(ResourceLimitError, match="failing closed"):
            await permits.acquire()
        with pytest.raises(ResourceLimitError, match="failing closed"):
            await permits.try_acquire()
        with pytest.raises(ResourceLimitError, match="failing closed"):
            await breaker.call(asyncio.sleep, 0)
        assert time.monotonic() - start < 3 * 0.3 + 0.5
        assert limiter.stats().store_errors >= 1 and limiter.stats().fallbacks == 2
        redis_server.start()
        await asyncio.sleep(2.1)  # the longest back-off
        assert await limiter.try_acquire()
        assert await permits.try_acquire()
        await permits.close()


async def test_fail_open_uses_a_local_share(redis_server: RedisServer) -> None:
    async with RedisStore(redis_server.url, timeout=0.3) as store:
        limiter = RateLimiter(
            100,
            burst=8,
            store=store,
            name="fo",
            on_store_error="fail_open",
            expected_replicas=4,
        )
        permits = ConcurrencyLimiter(
            8, store=store, name="fop", on_store_error="fail_open", expected_replicas=4
        )
        breaker = CircuitBreaker(2, store=store, name="fob", on_store_error="fail_open")
        redis_server.kill()
        # the local share: burst 8 / 4 = 2 tokens now
        assert [await limiter.try_acquire() for _ in range(3)] == [True, True, False]
        await limiter.acquire(timeout=1)  # 25 per second locally
        assert limiter.stats().fallbacks == 4
        # 8 // 4 = 2 permits locally
        assert await permits.try_acquire()
        await permits.acquire(timeout=0.1)
        with pytest.raises(ResourceTimeoutError):
            await permits.acquire(timeout=0.1)
        assert not await permits.try_acquire()
        await permits.release()
        await permits.close()
        assert permits.stats().borrowed == 0
        # the local breaker decides
        for _ in range(2):
            with pytest.raises(OSError, match="down"):
                async with breaker:
                    raise OSError("down")
        with pytest.raises(CircuitBreakerError):
            await breaker.call(asyncio.sleep, 0)


async def test_shared_permits(store: RedisStore) -> None:
    a = ConcurrencyLimiter(2, store=store, name="pool", lease=0.6)
    b = ConcurrencyLimiter(2, store=store, name="pool", lease=0.6)
    assert isinstance(a, SharedConcurrencyLimiter)
    assert await a.try_acquire() and await b.try_acquire()
    assert not await a.try_acquire()
    assert a.locked() and a.borrowed == 1 and a.name == "pool"
    assert "name='pool'" in repr(a)
    await asyncio.sleep(0.8)  # past the lease: renewed while held
    assert not await b.try_acquire()
    woken = asyncio.create_task(b.acquire(timeout=2))
    await asyncio.sleep(0.05)
    assert b.waiting == 1
    await a.release()  # the signal wakes the waiter at once
    await asyncio.wait_for(woken, 1)
    assert b.borrowed == 2
    with pytest.raises(ResourceLockError):
        await a.release()
    stats = b.stats()
    assert (stats.borrowed, stats.acquired, stats.fleet_borrowed, stats.lost) == (2, 2, 2, 0)
    await b.close()
    assert await store.client.zcard(store.key("pool", "holders")) == 0


async def test_a_dead_holders_permit_comes_back_after_its_lease(store: RedisStore) -> None:
    dead = ConcurrencyLimiter(1, store=store, name="lease", lease=0.3)
    alive = ConcurrencyLimiter(1, store=store, name="lease", lease=0.3)
    await dead.acquire()
    assert dead._renewer is not None
    dead._renewer.cancel()  # a process that stopped: no more renewals
    start = time.monotonic()
    await alive.acquire(timeout=2)
    assert 0.15 < time.monotonic() - start < 1.0
    await alive.close()


async def test_a_stalled_holder_counts_its_lost_lease(
    store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    holder = ConcurrencyLimiter(1, store=store, name="stall", lease=0.3)
    await holder.acquire()
    await store.client.zadd(store.key("stall", "holders"), {holder._held[0]: 0})  # expired
    with caplog.at_level(logging.WARNING, logger="mtaio.resources"):
        await asyncio.sleep(0.25)
    assert holder.stats().lost == 1
    assert "ran out while held" in caplog.text
    await holder.close()


async def test_replicas_open_together_and_probe_once(store: RedisStore) -> None:
    a = CircuitBreaker(2, reset_timeout=0.3, store=store, name="api")
    b = CircuitBreaker(2, reset_timeout=0.3, store=store, name="api")
    assert isinstance(a, SharedCircuitBreaker)
    seen: list[CircuitState] = []
    b.add_listener(lambda _, old, new: seen.append(new))

    async def down() -> None:
        raise ConnectionError("down")

    async def up() -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await a.call(down)
    assert a.state is CircuitState.OPEN and a.stats().opened == 1
    with pytest.raises(CircuitBreakerError, match="open"):
        await b.call(up)  # one round trip after the opening
    trips = b.stats().round_trips
    with pytest.raises(CircuitBreakerError, match="open"):
        await b.call(up)  # known open: refused locally
    assert b.stats().round_trips == trips
    await asyncio.sleep(0.35)

    async def slow() -> str:
        await asyncio.sleep(0.1)
        return "probe"

    results = await asyncio.gather(a.call(slow), b.call(up), return_exceptions=True)
    assert results[0] == "probe"
    assert isinstance(results[1], CircuitBreakerError)  # one trial across the fleet
    assert await b.call(up) == "ok"
    assert b.state is CircuitState.CLOSED
    assert seen == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]
    b_stats = b.stats()
    assert (b_stats.rejected, b_stats.successes) == (3, 1)


async def test_shared_breaker_verdicts_by_hand_and_reset(store: RedisStore) -> None:
    breaker = CircuitBreaker(1, reset_timeout=10, store=store, name="manual")
    await breaker.record_failure()
    with pytest.raises(CircuitBreakerError):
        async with breaker:
            pass
    await breaker.reset()
    async with breaker:
        pass
    await breaker.record_success()
    assert breaker.stats().state is CircuitState.CLOSED
    with pytest.raises(KeyError):
        async with breaker:
            raise KeyError("not a failure")  # failure_on=Exception: KeyError counts
    assert breaker.state is CircuitState.OPEN


async def test_reserve_says_how_long_to_wait_without_sleeping(store: RedisStore) -> None:
    limiter = RateLimiter(20, burst=1, store=store, name="reserve")
    assert await limiter.reserve() == 0.0
    second = await limiter.reserve()  # the next token, due in 50 ms: reserved, not slept
    assert 0.03 < second <= 0.05
    third = await limiter.reserve()
    assert third == pytest.approx(second + 0.05, abs=0.01)
    with pytest.raises(ResourceTimeoutError):
        await limiter.reserve(timeout=0.01)  # taking nothing
    assert await limiter.reserve(timeout=1) == pytest.approx(third + 0.05, abs=0.01)


async def test_concurrent_decisions_share_pipelines_and_stay_exact(store: RedisStore) -> None:
    limiter = RateLimiter(0.001, burst=20, store=store, name="crowd")
    granted = await asyncio.gather(*(limiter.try_acquire() for _ in range(50)))
    assert granted.count(True) == 20  # each script is still atomic on the server
    assert store.round_trips == 50
    assert store.pipelined == 49  # the first went straight out, the rest in its wake
    assert limiter.stats().acquired == 20 and limiter.stats().round_trips == 50


async def test_a_lone_caller_is_never_pipelined(store: RedisStore) -> None:
    limiter = RateLimiter(1000, burst=1000, store=store, name="alone")
    for _ in range(20):
        assert await limiter.try_acquire()
    assert (store.round_trips, store.pipelined) == (20, 0)


async def test_pipelined_calls_reload_scripts_after_a_flush(store: RedisStore) -> None:
    limiter = RateLimiter(1000, burst=1000, store=store, name="pflush")
    other = RateLimiter(1000, burst=1000, store=store, name="pflush2")
    assert await limiter.try_acquire()
    await store.client.script_flush()  # every EVALSHA of the next batch gets NOSCRIPT
    granted = await asyncio.gather(
        *(limiter.try_acquire() for _ in range(10)), *(other.acquire() for _ in range(10))
    )
    assert granted[:10] == [True] * 10 and store.pipelined > 0
    assert store.errors == 0


async def test_a_cancelled_caller_leaves_the_batch_and_others_get_their_replies(
    store: RedisStore,
) -> None:
    limiter = RateLimiter(0.001, burst=5, store=store, name="leave")
    first = asyncio.create_task(limiter.try_acquire())
    await asyncio.sleep(0)  # on the wire: what follows queues
    queued = [asyncio.create_task(limiter.try_acquire()) for _ in range(6)]
    await asyncio.sleep(0)
    queued[0].cancel()  # still queued: never sent, takes nothing
    results = await asyncio.gather(first, *queued[1:])
    assert results.count(True) == 5 and results.count(False) == 1
    assert queued[0].cancelled()


async def test_a_hung_server_fails_a_whole_batch_within_the_timeout(
    redis_server: RedisServer,
) -> None:
    async with RedisStore(redis_server.url, timeout=0.3) as store:
        limiter = RateLimiter(1000, burst=1000, store=store, name="hung")
        assert await limiter.try_acquire()
        redis_server.pause()
        try:
            start = time.monotonic()
            outcomes = await asyncio.gather(
                *(limiter.try_acquire() for _ in range(10)), return_exceptions=True
            )
            elapsed = time.monotonic() - start
        finally:
            redis_server.resume()
        assert all(isinstance(o, ResourceLimitError) for o in outcomes), outcomes
        assert elapsed < 0.3 * 2 + 0.5  # the direct call and the batch, each bounded
        assert store.errors == 10 and store.pipelined == 9


async def test_closing_the_store_fails_the_calls_waiting_for_a_pipeline(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, timeout=5)
    limiter = RateLimiter(1000, burst=1000, store=store, name="closing")
    assert await limiter.try_acquire()
    redis_server.pause()
    try:
        calls = [asyncio.create_task(limiter.try_acquire()) for _ in range(5)]
        await asyncio.sleep(0.05)  # one on the wire, four in the sender's batch
        await store.close()
        outcomes = await asyncio.wait_for(asyncio.gather(*calls[1:], return_exceptions=True), 1)
    finally:
        redis_server.resume()
    assert all(isinstance(o, ResourceLimitError) for o in outcomes), outcomes
    calls[0].cancel()
    await asyncio.gather(calls[0], return_exceptions=True)


async def test_a_lost_connection_fails_a_batch_at_once(redis_server: RedisServer) -> None:
    async with RedisStore(redis_server.url, timeout=5) as store:
        limiter = RateLimiter(1000, burst=1000, store=store, name="lost")
        assert await limiter.try_acquire()
        redis_server.pause()
        calls = [asyncio.create_task(limiter.try_acquire()) for _ in range(8)]
        await asyncio.sleep(0.05)  # one on the wire, seven in the sender's pipeline
        start = time.monotonic()
        redis_server.kill()  # resumed for an instant, then killed: the connections reset
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert time.monotonic() - start < 2  # not the 5 s timeout
        failed = [o for o in outcomes if isinstance(o, ResourceLimitError)]
        # what the server answered in its last instant stands; the rest fails at once
        assert failed and all(o is True for o in outcomes if o not in failed), outcomes
        assert store.pipelined == 7 and store.errors == len(failed)


async def test_lone_calls_keep_the_clients_database_and_decoding(
    redis_server: RedisServer,
) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/3", decode_responses=True)
    try:
        async with RedisStore(client) as store:
            limiter = RateLimiter(0.001, burst=2, store=store, name="db3")
            assert [await limiter.try_acquire() for _ in range(3)] == [True, True, False]
            assert limiter.available() == pytest.approx(0, abs=0.01)
            assert await client.exists("{mtaio:db3}:rate:0") == 1  # in database 3
            other = Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/0")
            assert await other.exists("{mtaio:db3}:rate:0") == 0
            await other.aclose()
    finally:
        await client.aclose()
