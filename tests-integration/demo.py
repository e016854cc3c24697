"""mtaio demo: a small order service built from every mtaio package.

Orders arrive as events at a steady rate. Each one runs through a pipeline (validate, enrich,
charge): customer profiles come from a two-tier cache (a local TTLCache in front of a
DistributedCache replicated over two embedded CacheNodes, or your Redis servers), payments go to a
simulated downstream that is rate- and concurrency-limited, retried with back-off and guarded by a
circuit breaker (the downstream has an outage in the middle of the run). A TaskExecutor bounds how
many orders are in flight, a Channel fans results out, and a ResourceMonitor and a Profiler watch
it all. At the end: a summary of what happened.

The orders and what the payment service does to each one come from ``--seed``: the same seed
gives the same order counts, transient payment errors and breaker trips on every run, and a
different seed gives different ones (cache hit rates and latencies depend on timing).

A ``--redis`` node that is down at the start, goes down during the run or before the final
clean-up is reported; the cache then serves from its other replicas or from the database, the
summary is still printed, and the exit code stays 0.

``--workers N`` runs the service as N OS processes (this script, started again with the
hidden ``--worker`` flag) against the nodes the parent started or was given: they share a
``LayeredCache`` (its invalidations travel over Pub/Sub on the first node) and the
notifications ``Channel`` (``RedisPubSubTransport`` on the same node, which the parent counts
from). With ``--redis`` they also share one ``RateLimiter`` and one ``ConcurrencyLimiter``
through a ``RedisStore`` on the first server; the embedded CacheNode runs no Lua scripts, so
on embedded defaults each worker limits itself to rate/N and cap/N, and the summary says so.
Either way the summary checks the limits from the workers' own records: the largest number
of payment calls admitted in any 1-second window across all workers against rate + burst,
and the most payment calls in flight at once against the cap. A worker that dies is
reported and the others are summarised.

    python tests-integration/demo.py [--duration 8] [--rate 150] [--redis redis://host:port ...]
                                     [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mtaio.cache import CacheNode, DistributedCache, LayeredCache, TTLCache
from mtaio.core import TaskExecutor
from mtaio.data import Pipeline, Stage
from mtaio.events import Channel, EventEmitter, RedisPubSubTransport
from mtaio.exceptions import CacheError, CircuitBreakerError, RetryError, StageError
from mtaio.monitoring import Profiler, ResourceMonitor
from mtaio.resources import (
    CircuitBreaker,
    CircuitState,
    ConcurrencyLimiter,
    RateLimiter,
    RedisStore,
    Retry,
    SharedRateLimiter,
)

Order = dict[str, Any]

# What the payment service does, drawn per order from the seed: a card declined for good, and
# how many transient errors the order meets before its charge goes through.
DECLINED_SHARE = 0.01
TRANSIENT_ERROR_CHANCE = 0.1
MAX_TRANSIENT_ERRORS = 3  # as many as the Charge stage's attempts: such an order fails


class InvalidOrder(ValueError):
    """An order the validation stage refuses."""


class PaymentDeclined(ValueError):
    """The payment service refused the card: retrying does not help."""


class TransientPaymentError(ConnectionError):
    """The payment service failed this attempt: the next one may go through."""


class ServiceUnavailable(ConnectionError):
    """The payment service is down (its outage): the circuit breaker counts these."""


@dataclass
class Tally:
    """What the demo counts while it runs."""

    started: float = field(default_factory=time.monotonic)
    emitted: int = 0
    completed: int = 0
    rejected: int = 0
    failed: int = 0
    local_hits: int = 0
    distributed_hits: int = 0
    loads: int = 0
    cache_errors: int = 0
    payment_calls: int = 0
    declined: int = 0
    transient_errors: int = 0
    outage_errors: int = 0
    breaker_waits: int = 0
    breaker_trips: int = 0
    notifications: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    # Wall-clock times (``time.time()``, one clock for every process of the machine) of
    # each payment call the rate limiter admitted, and of each hold of a concurrency permit:
    # what --workers checks the shared limits with.
    admitted: list[float] = field(default_factory=list)
    holds: list[tuple[float, float]] = field(default_factory=list)

    def problem(self, message: str) -> None:
        """Note something that went wrong around the service (shown in the summary)."""
        if message not in self.problems:
            self.problems.append(message)
            logging.getLogger("demo").warning("%s", message)


class PaymentService:
    """A downstream that answers in a few milliseconds, fails now and then, and has an outage.

    Whether a call fails depends on the order (its ``card`` and ``glitches``, drawn from the
    seed) and on whether the outage is on: never on timing otherwise.
    """

    def __init__(self, rng: random.Random, outage: tuple[float, float], tally: Tally) -> None:
        self._rng = rng
        self._outage = outage
        self._tally = tally
        self._origin = time.monotonic()
        self._attempts: Counter[int] = Counter()

    def start(self) -> None:
        """Start the outage clock (the run starts now)."""
        self._origin = time.monotonic()

    async def charge(self, order: Order) -> str:
        self._tally.payment_calls += 1
        await asyncio.sleep(self._rng.uniform(0.002, 0.008))
        elapsed = time.monotonic() - self._origin
        if self._outage[0] <= elapsed < self._outage[1]:
            self._tally.outage_errors += 1
            raise ServiceUnavailable("the payment service is unavailable")
        if order["card"] == "declined":
            self._tally.declined += 1
            raise PaymentDeclined(f"card declined for order {order['id']}")
        self._attempts[order["id"]] += 1
        if self._attempts[order["id"]] <= order["glitches"]:
            self._tally.transient_errors += 1
            raise TransientPaymentError(f"payment for order {order['id']} failed")
        return f"pay-{order['id']:06d}"


class LayeredProfiles:
    """Customer profiles: local TTLCache, then the DistributedCache, then the 'database'.

    The distributed tier is an optimisation: when none of its nodes answers, a lookup falls
    back to the database and the error is counted, never raised to the order.
    """

    def __init__(
        self,
        local: TTLCache[dict[str, Any]],
        remote: DistributedCache[dict[str, Any]],
        tally: Tally,
    ) -> None:
        self.local = local
        self.remote = remote
        self._tally = tally

    async def get(self, customer_id: int) -> dict[str, Any]:
        key = f"customer:{customer_id}"
        profile = await self.local.get(key)
        if profile is not None:
            self._tally.local_hits += 1
            return profile
        try:
            profile = await self.remote.get(key)
        except CacheError as error:
            remote_failed(self._tally, error)
            profile = None
        if profile is not None:
            self._tally.distributed_hits += 1
        else:
            profile = await load_profile(customer_id, self._tally)
            try:
                await self.remote.set(key, profile, ttl=30.0)
            except CacheError as error:
                remote_failed(self._tally, error)
        await self.local.set(key, profile)
        return profile


def remote_failed(tally: Tally, error: CacheError) -> None:
    """Count an error of the distributed tier; the first one is reported."""
    tally.cache_errors += 1
    if tally.cache_errors == 1:  # reported once; the summary counts the rest
        tally.problem(f"distributed cache unavailable, falling back to the database ({error})")


class SharedProfiles:
    """Customer profiles for ``--workers``: a LayeredCache shared by the worker processes.

    Its local tier answers first; a miss reads the distributed tier, then the database, and
    the write that stores the profile drops the key from every other worker's local tier
    (its invalidation goes over Pub/Sub). Errors of the distributed tier count, as above.
    """

    def __init__(self, cache: LayeredCache[dict[str, Any]], tally: Tally) -> None:
        self.cache = cache
        self._tally = tally

    async def get(self, customer_id: int) -> dict[str, Any]:
        key = f"customer:{customer_id}"
        try:
            profile = await self.cache.get(key)
        except CacheError as error:
            remote_failed(self._tally, error)
            profile = None
        if profile is None:
            profile = await load_profile(customer_id, self._tally)
            try:
                await self.cache.set(key, profile, ttl=30.0)
            except CacheError as error:
                remote_failed(self._tally, error)
        return profile


async def load_profile(customer_id: int, tally: Tally) -> dict[str, Any]:
    """A profile from the 'database' (slower than either cache tier)."""
    tally.loads += 1
    await asyncio.sleep(0.004)
    tier = "gold" if customer_id % 7 == 0 else "standard"
    return {"id": customer_id, "tier": tier, "country": "JP"}


class Validate(Stage[Order, Order]):
    async def process(self, order: Order) -> Order:
        if order["quantity"] <= 0 or "customer_id" not in order:
            raise InvalidOrder(f"order {order['id']} is malformed")
        return order


class Enrich(Stage[Order, Order]):
    def __init__(self, profiles: LayeredProfiles | SharedProfiles) -> None:
        super().__init__()
        self._profiles = profiles

    async def process(self, order: Order) -> Order:
        profile = await self._profiles.get(order["customer_id"])
        discount = 0.1 if profile["tier"] == "gold" else 0.0
        total = round(order["quantity"] * order["unit_price"] * (1 - discount), 2)
        return {**order, "tier": profile["tier"], "total": total}


class Charge(Stage[Order, Order]):
    """Charge the order: rate- and concurrency-limited, retried, behind a circuit breaker.

    Transient errors are retried (``retry``); while the service is down, or the breaker
    open, the order waits for the service to come back, up to ``patience`` seconds.
    """

    def __init__(
        self,
        payments: PaymentService,
        rate: RateLimiter,
        slots: ConcurrencyLimiter,
        breaker: CircuitBreaker,
        retry: Retry,
        tally: Tally,
        patience: float,
    ) -> None:
        super().__init__()
        self._payments = payments
        self._rate = rate
        self._slots = slots
        self._breaker = breaker
        self._retry = retry
        self._tally = tally
        self._patience = patience
        self._open_seen = False

    def _breaker_open(self) -> bool:
        # A method, not an inline test: the state changes across awaits.
        return self._breaker.state is CircuitState.OPEN

    async def _attempt(self, order: Order) -> str:
        deadline = time.monotonic() + self._patience
        while True:
            if self._breaker_open():
                # No call can go through: wait without spending the downstream's rate.
                self._tally.breaker_waits += 1
                if time.monotonic() >= deadline:
                    raise CircuitBreakerError("the payment service stayed down")
                await asyncio.sleep(0.05)
                continue
            if isinstance(self._rate, SharedRateLimiter):
                # The fleet's limiter answers with the wait it scheduled on the server's
                # clock: that is when the call is admitted, however late this process
                # wakes up for it (acquire() is this reserve() plus the sleep).
                wait = await self._rate.reserve()
                self._tally.admitted.append(time.time() + wait)
                await asyncio.sleep(wait)
            else:
                await self._rate.acquire()
                self._tally.admitted.append(time.time())
            try:
                async with self._slots:
                    held = time.time()
                    try:
                        payment_id = await self._breaker.call(self._payments.charge, order)
                    finally:
                        self._tally.holds.append((held, time.time()))
            except (ServiceUnavailable, CircuitBreakerError) as error:
                if isinstance(error, CircuitBreakerError):
                    self._tally.breaker_waits += 1
                elif self._breaker_open() and not self._open_seen:
                    # One trip per open period: calls already in flight when it opened
                    # fail after it and would count again in the breaker's own stats.
                    self._open_seen = True
                    self._tally.breaker_trips += 1
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            self._open_seen = False
            return payment_id

    async def process(self, order: Order) -> Order:
        payment_id = await self._retry.call(self._attempt, order)
        return {**order, "payment_id": payment_id}


async def order_source(rate: float, duration: float, seed: int) -> AsyncIterator[Order]:
    """``rate * duration`` orders at ``rate`` per second; about 2% are malformed.

    Every field comes from ``seed``, including what the payment service will do to the order.
    """
    rng = random.Random(seed)
    pacing = RateLimiter(rate, burst=max(1.0, rate / 10))
    for order_id in range(1, round(rate * duration) + 1):
        await pacing.acquire()
        glitches = 0
        while glitches < MAX_TRANSIENT_ERRORS and rng.random() < TRANSIENT_ERROR_CHANCE:
            glitches += 1
        yield {
            "id": order_id,
            "customer_id": rng.randrange(1, 400),
            "quantity": 0 if rng.random() < 0.02 else rng.randint(1, 5),
            "unit_price": round(rng.uniform(5, 120), 2),
            "card": "declined" if rng.random() < DECLINED_SHARE else "ok",
            "glitches": glitches,
        }


def node_address(url: str) -> tuple[str, int]:
    """The ``(host, port)`` of a ``redis://`` or ``rediss://`` URL; ValueError if malformed."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"{url!r} is not a redis:// or rediss:// URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    port = parts.port  # raises ValueError for a port that is not a number in range
    return parts.hostname, port or 6379


async def answers(address: tuple[str, int]) -> bool:
    """Whether something accepts TCP connections at ``address`` within half a second."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def storage(redis_urls: Sequence[str], tally: Tally) -> AsyncIterator[tuple[list[Any], str]]:
    """The distributed tier's nodes: two embedded CacheNodes, or the given Redis servers."""
    if redis_urls:
        for url in redis_urls:
            if not await answers(node_address(url)):
                tally.problem(f"Redis node {url} is down at the start")
        yield list(redis_urls), f"{len(redis_urls)} Redis server(s)"
        return
    async with CacheNode("demo-a") as a, CacheNode("demo-b") as b:
        yield [a.address, b.address], f"2 embedded CacheNodes ({a.address[1]}, {b.address[1]})"


@dataclass(frozen=True)
class WorkerSpec:
    """What a ``--workers`` parent tells each worker process (as JSON on its command line)."""

    index: int
    workers: int
    nodes: list[Any]  # (host, port) pairs or redis:// URLs: the distributed tier
    bus: str  # the redis:// URL of the node carrying the channel and the invalidations
    store: str | None  # the Redis sharing the limits, or None: each worker limits itself
    run_id: str  # keeps this run's shared limiter state apart from other runs'

    def dumps(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def loads(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


DEMO_FILE = os.path.abspath(__file__)  # what --workers starts again, once per worker
RATE_HEADROOM = 1.2  # the payment limit is this much above the order rate
BURST = 20
CAP = 16
# The workers time their admissions with time.time() when the answer reaches them: a reply
# read a few milliseconds late moves a call into the next window. The rate check allows
# for 20 ms of such error (rate * 0.02 calls, 3.6 at the default rate) and says so.
TIMESTAMP_ERROR = 0.02


def payment_limits(
    args: argparse.Namespace, spec: WorkerSpec | None, stack: contextlib.AsyncExitStack
) -> tuple[RateLimiter, ConcurrencyLimiter]:
    """The payment rate limiter and concurrency cap: one process's, shared, or its share."""
    rate, burst, cap = args.rate * RATE_HEADROOM, float(BURST), CAP
    if spec is None or spec.workers == 1:
        return RateLimiter(rate, burst=burst), ConcurrencyLimiter(cap)
    n = spec.workers
    if spec.store is None:
        # No Lua on the embedded node: each worker takes its share, so the fleet's sum of
        # buckets and permits stays within the configured rate + burst and cap.
        return RateLimiter(rate / n, burst=burst / n), ConcurrencyLimiter(max(1, cap // n))
    store = RedisStore(spec.store, prefix=f"mtaio-demo-{spec.run_id}")
    stack.push_async_callback(store.close)
    # Failing open: with the store unreachable a worker carries on at its share of the
    # limits (rate / workers), and the summary counts those fallbacks.
    limiter = RateLimiter(
        rate,
        burst=burst,
        store=store,
        name="payments",
        on_store_error="fail_open",
        expected_replicas=n,
    )
    slots = ConcurrencyLimiter(
        cap,
        store=store,
        name="payment-slots",
        lease=2.0,
        on_store_error="fail_open",
        expected_replicas=n,
    )
    stack.push_async_callback(slots.close)
    return limiter, slots


async def run(
    args: argparse.Namespace,
    emitter: EventEmitter | None = None,
    spec: WorkerSpec | None = None,
) -> dict[str, Any]:
    """Run the service for ``args.duration`` seconds and return the summary figures.

    ``emitter`` receives the orders (``order.created``) and the run's phases: ``demo.started``
    when the first order is due, ``demo.drained`` when the last one has finished, before
    the summary and the clean-up. With ``args.workers`` above one this is the parent of
    :func:`run_workers`; ``spec`` makes it one of the workers, which returns its record.
    """
    if spec is None and args.workers > 1:
        return await run_workers(args, emitter)
    tally = Tally()
    rng = random.Random(args.seed)
    emitter = emitter if emitter is not None else EventEmitter(name="orders")
    notifications: Channel[Order] = Channel(
        "notifications",
        transport=None if spec is None else RedisPubSubTransport(spec.bus, prefix="mtaio-demo"),
    )
    monitor = ResourceMonitor(interval=0.5)
    profiler = Profiler()
    outage = (args.duration * 0.4, args.duration * 0.6)
    # Open for longer than the outage lasts: the breaker trips once per outage, and its
    # first trial finds the service back (so the trips do not depend on timing).
    breaker = CircuitBreaker(
        failure_threshold=5,
        reset_timeout=outage[1] - outage[0] + 0.25,
        failure_on=ServiceUnavailable,
    )
    retry = Retry(
        attempts=MAX_TRANSIENT_ERRORS, delay=0.01, factor=2.0, retry_on=TransientPaymentError
    )
    payments = PaymentService(rng, outage, tally)
    local: TTLCache[dict[str, Any]] = TTLCache(default_ttl=2.0, max_size=200)

    # Everything opened here is closed on the way out, also when the run fails.
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(profiler.close)
        stack.push_async_callback(local.close)
        rate, slots = payment_limits(args, spec, stack)
        if spec is None:
            nodes, where = await stack.enter_async_context(storage(args.redis, tally))
        else:
            nodes, where = [tuple(n) if isinstance(n, list) else n for n in spec.nodes], ""
        remote: DistributedCache[dict[str, Any]] = DistributedCache(
            nodes, replication_factor=min(2, len(nodes)), timeout=0.5, namespace="mtaio-demo"
        )
        profiles: LayeredProfiles | SharedProfiles
        if spec is None:
            await stack.enter_async_context(remote)
            profiles = LayeredProfiles(local, remote, tally)
        else:
            host, port = node_address(spec.bus)
            layered = LayeredCache(remote, local_ttl=2.0, local_max_size=200, bus=f"{host}:{port}")
            await stack.enter_async_context(layered)
            await layered.connected(within=2.0)
            profiles = SharedProfiles(layered, tally)
        stack.push_async_callback(notifications.close)
        pipeline: Pipeline[Order, Order] = Pipeline()
        pipeline.add_stage(Validate()).add_stage(Enrich(profiles))
        patience = breaker.reset_timeout + (outage[1] - outage[0]) + 2.0
        pipeline.add_stage(Charge(payments, rate, slots, breaker, retry, tally, patience))
        # A worker's notifications go to the parent, which counts those of every worker.
        subscriber = (
            await notifications.subscribe(["order.*"], maxsize=10_000) if spec is None else None
        )

        async def notify(order: Order, topic: str) -> None:
            if spec is None:
                await notifications.publish(order, topic=topic)
                return
            try:
                await notifications.publish(order, topic=topic)
            except Exception as error:  # the bus is down: the order itself is done
                tally.problem(f"could not publish notifications to {spec.bus} ({error})")

        async def handle(order: Order) -> None:
            async with monitor.track_request("order"), profiler.trace_context("order"):
                try:
                    done = await pipeline.process(order)
                except StageError as error:
                    cause = error.__cause__
                    if isinstance(cause, InvalidOrder):
                        tally.rejected += 1
                        await notify(order, "order.rejected")
                        return
                    tally.failed += 1
                    if isinstance(cause, CircuitBreakerError) or (
                        isinstance(cause, RetryError)
                        and isinstance(cause.last_error, CircuitBreakerError)
                    ):
                        tally.problem("orders failed while the payment service stayed down")
                    await notify(order, "order.failed")
                    raise
            tally.completed += 1
            assert done is not None
            await notify(done, "order.completed")

        async def count_notifications() -> None:
            if subscriber is not None:
                async for message in subscriber:
                    tally.notifications[message.topic or ""] += 1

        counter = asyncio.create_task(count_notifications())
        async with TaskExecutor(limit=64) as executor, monitor, pipeline:
            handles = []

            @emitter.on("order.created")
            async def on_order(event: Any) -> None:
                handles.append(executor.submit(handle(event.data)))

            if spec is not None:
                await worker_ready()
            with progress(args) as advance:
                tally.started = time.monotonic()
                payments.start()
                await emitter.emit("demo.started", {"seed": args.seed})
                share = 1 if spec is None else spec.workers
                seed = args.seed if spec is None else args.seed + 7919 * spec.index
                async for order in order_source(args.rate / share, args.duration, seed):
                    await emitter.emit("order.created", order)
                    tally.emitted += 1
                    advance(tally)
                for task_handle in handles:
                    with contextlib.suppress(StageError):
                        await task_handle
                advance(tally, done=True)
            emitter.off("order.created", on_order)
        await notifications.close()
        await counter
        await emitter.emit("demo.drained", {"emitted": tally.emitted})
        if isinstance(profiles, SharedProfiles):
            return worker_record(tally, profiles.cache, rate, slots)
        # Leave the nodes as we found them; a node that is down now only costs a report.
        try:
            await remote.clear()
        except CacheError as error:
            tally.problem(f"could not clear the distributed cache at the end ({error})")
        return await summarize(tally, where, local, remote, rate, breaker, monitor, profiler)


async def worker_ready() -> None:
    """Tell the parent this worker is set up, and wait for its go (all start together)."""
    print("READY", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


def worker_record(
    tally: Tally, cache: LayeredCache[dict[str, Any]], rate: RateLimiter, slots: ConcurrencyLimiter
) -> dict[str, Any]:
    """A worker's figures, as JSON-ready data for the parent."""
    layered = cache.stats()
    return {
        "emitted": tally.emitted,
        "completed": tally.completed,
        "failed": tally.failed,
        "rejected": tally.rejected,
        "payment calls": tally.payment_calls,
        "declined": tally.declined,
        "transient errors": tally.transient_errors,
        "outage errors": tally.outage_errors,
        "breaker trips": tally.breaker_trips,
        "breaker waits": tally.breaker_waits,
        "local hits": layered.local_hits,
        "local misses": layered.local_misses,
        "loads": tally.loads,
        "cache errors": tally.cache_errors,
        "invalidations sent": layered.invalidations_sent,
        "invalidations received": layered.invalidations_received,
        "local flushes": layered.local_flushes,
        "limiter fallbacks": getattr(rate.stats(), "fallbacks", 0)
        + getattr(slots.stats(), "fallbacks", 0),
        "admitted": tally.admitted,
        "holds": tally.holds,
        "problems": tally.problems,
    }


def largest_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most of ``times`` that fall in any window of ``width`` seconds."""
    ordered = sorted(times)
    best = first = 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= width:
            first += 1
        best = max(best, last - first + 1)
    return best


def peak_holders(holds: Sequence[tuple[float, float]]) -> int:
    """The most intervals ``(start, end)`` open at one time (an end before a start at a tie)."""
    edges = sorted([(end, -1) for _, end in holds] + [(start, 1) for start, _ in holds])
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


@dataclass
class Worker:
    """One worker process as the parent sees it."""

    index: int
    proc: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    record: dict[str, Any] | None = None
    stderr: list[str] = field(default_factory=list)

    async def read(self) -> None:
        """Follow the worker's output: READY, then its RESULT; keep the end of its stderr."""
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None

        async def errors() -> None:
            assert self.proc.stderr is not None
            async for line in self.proc.stderr:
                self.stderr = [*self.stderr[-19:], line.decode(errors="replace").rstrip()]

        reading_errors = asyncio.create_task(errors())
        async for line in self.proc.stdout:
            if line.startswith(b"READY"):
                self.ready.set()
            elif line.startswith(b"RESULT "):
                with contextlib.suppress(ValueError):
                    self.record = json.loads(line[len(b"RESULT ") :])
        self.ready.set()  # it ended: nothing more to wait for
        await reading_errors
        await self.proc.wait()

    def status(self) -> str:
        """How the worker ended."""
        code = self.proc.returncode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        if code and self.stderr:
            return f"exited with status {code} ({self.stderr[-1]})"
        if code:
            return f"exited with status {code}"
        return "ok" if self.record is not None else "ended without a result"


def bus_url(node: Any) -> str:
    """The redis:// URL of a node given as ``(host, port)`` or as a URL."""
    return node if isinstance(node, str) else f"redis://{node[0]}:{node[1]}"


async def run_workers(args: argparse.Namespace, emitter: EventEmitter | None) -> dict[str, Any]:
    """Run ``args.workers`` worker processes against shared nodes; summarise all of them.

    ``emitter`` gets ``demo.started`` (with the workers' ``pids``) when they are told to go.
    """
    tally = Tally()
    emitter = emitter if emitter is not None else EventEmitter(name="orders")
    n = args.workers
    async with contextlib.AsyncExitStack() as stack:
        nodes, where = await stack.enter_async_context(storage(args.redis, tally))
        live = [url for url in args.redis if await answers(node_address(url))]
        store = live[0] if live else None
        # The channel and the invalidations travel on the first node that answers.
        bus = live[0] if live else bus_url(nodes[0])
        # Everything the workers write through the Channel comes here, counted per topic.
        channel: Channel[Order] = Channel(
            "notifications",
            transport=RedisPubSubTransport(bus, prefix="mtaio-demo", confirm_timeout=3.0),
        )
        stack.push_async_callback(channel.close)
        try:
            subscriber = await channel.subscribe(["order.*"], maxsize=1_000_000)
        except Exception as error:  # the bus is down: the run goes on without the count
            tally.problem(f"could not subscribe to the notifications on {bus} ({error})")
            subscriber = None

        async def count() -> None:
            if subscriber is not None:
                async for message in subscriber:
                    tally.notifications[message.topic or ""] += 1

        counter = asyncio.create_task(count())
        run_id = uuid.uuid4().hex[:12]
        workers: list[Worker] = []
        for index in range(n):
            spec = WorkerSpec(index, n, list(nodes), bus, store, run_id)
            argv = ["--worker", spec.dumps(), "--duration", str(args.duration)]
            argv += ["--rate", str(args.rate), "--seed", str(args.seed), "--quiet"]
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                DEMO_FILE,
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stack.callback(_kill_if_running, proc)
            workers.append(Worker(index, proc))
        readers = [asyncio.create_task(w.read()) for w in workers]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in workers)), 120)
        started = time.monotonic()
        for w in workers:
            assert w.proc.stdin is not None
            with contextlib.suppress(OSError):
                w.proc.stdin.write(b"go\n")
                await w.proc.stdin.drain()
        if not args.quiet:
            console().print(f"{n} workers running for {args.duration:g} s ...")
        pids = [w.proc.pid for w in workers]
        await emitter.emit("demo.started", {"seed": args.seed, "pids": pids})
        patience = args.duration * 3 + 60.0  # far beyond a healthy run: a hung worker
        _, hung = await asyncio.wait(readers, timeout=patience)
        for w in workers:
            if w.proc.returncode is None:
                tally.problem(f"worker {w.index + 1} did not finish within {patience:g} s")
                _kill_if_running(w.proc)
        await asyncio.gather(*hung, return_exceptions=True)
        seconds = time.monotonic() - started
        for w in workers:
            if w.record is None:
                tally.problem(
                    f"worker {w.index + 1} (pid {w.proc.pid}) {w.status()}: "
                    "the summary covers the other workers"
                )
        records = [w.record for w in workers if w.record is not None]
        # Let the last notifications arrive (Pub/Sub over loopback: milliseconds).
        expected = sum(r["completed"] + r["failed"] + r["rejected"] for r in records)
        deadline = time.monotonic() + 3.0
        while sum(tally.notifications.values()) < expected and time.monotonic() < deadline:  # noqa: ASYNC110 (a bounded wait on a counter another task fills)
            await asyncio.sleep(0.02)
        missed = channel.stats().missed
        await channel.close()
        await counter
        if missed:
            tally.problem(f"{missed} notifications were lost on the way to the parent")
        await emitter.emit("demo.drained", {"emitted": sum(r["emitted"] for r in records)})
        try:
            async with DistributedCache[Any](
                nodes, replication_factor=min(2, len(nodes)), timeout=0.5, namespace="mtaio-demo"
            ) as remote:
                await remote.clear()
        except CacheError as error:
            tally.problem(f"could not clear the distributed cache at the end ({error})")
        where += f", {n} worker processes"
        return summarize_workers(args, tally, where, seconds, workers, store)


def _kill_if_running(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def summarize_workers(
    args: argparse.Namespace,
    tally: Tally,
    where: str,
    seconds: float,
    workers: Sequence[Worker],
    store: str | None,
) -> dict[str, Any]:
    """The figures of a ``--workers`` run, as plain data (``show`` prints them)."""
    n = len(workers)
    records = [w.record for w in workers if w.record is not None]

    def total(name: str) -> int:
        return sum(int(r[name]) for r in records)

    for record in records:
        for problem in record["problems"]:
            tally.problem(problem)
    rate = args.rate * RATE_HEADROOM
    if store is not None:
        how = f"shared by the {n} workers through a RedisStore on {store}"
        cap = CAP
    else:
        how = f"NOT shared: rate/{n} and cap/{n} per worker (no Lua on CacheNode; use --redis)"
        cap = n * max(1, CAP // n)
    window = largest_window([t for r in records for t in r["admitted"]])
    slack = rate * TIMESTAMP_ERROR
    peak = peak_holders([(a, b) for r in records for a, b in r["holds"]])
    lookups = total("local hits") + total("local misses")
    distributed = total("local misses") - total("loads")

    def share(part: int) -> float:
        return round(part / lookups, 3) if lookups else 0.0

    return {
        "storage": where,
        "seconds": round(seconds, 2),
        "problems": list(tally.problems),
        "orders": {
            "emitted": total("emitted"),
            "completed": total("completed"),
            "failed": total("failed"),
            "rejected": total("rejected"),
        },
        "workers": {
            f"worker {w.index + 1}": {
                "pid": w.proc.pid,
                "status": w.status(),
                **{
                    key: (w.record or {}).get(key, "-")
                    for key in ("emitted", "completed", "failed", "rejected")
                },
                "local tier hit rate": local_rate(w.record) if w.record else "-",
                "invalidations received": (w.record or {}).get("invalidations received", "-"),
            }
            for w in workers
        },
        "limits": {
            "limits": how,
            "largest 1 s window of admitted payment calls": window,
            "allowed in 1 s (rate + burst)": round(rate + BURST, 2),
            "timestamp error allowed": f"{TIMESTAMP_ERROR * 1e3:g} ms = {slack:.1f} calls",
            "rate held": window <= rate + BURST + slack,
            "most payment calls in flight at once": peak,
            "concurrency cap": cap,
            "cap held": peak <= cap,
            "limiter fallbacks (store unreachable)": total("limiter fallbacks"),
        },
        "notifications": dict(tally.notifications),
        "cache": {
            "lookups": lookups,
            "local tier hit rate": share(total("local hits")),
            "distributed tier hit rate": share(distributed),
            "loads from the database": total("loads"),
            "distributed tier errors": total("cache errors"),
            "invalidations sent": total("invalidations sent"),
            "invalidations received": total("invalidations received"),
            "local tier flushes": total("local flushes"),
        },
        "payments": {
            "calls": total("payment calls"),
            "declined cards": total("declined"),
            "transient errors (retried)": total("transient errors"),
            "outage errors": total("outage errors"),
            "breaker trips": total("breaker trips"),
            "waits on the open breaker": total("breaker waits"),
        },
    }


def local_rate(record: dict[str, Any]) -> float:
    """A worker's local tier hit rate."""
    lookups = record["local hits"] + record["local misses"]
    return round(record["local hits"] / lookups, 3) if lookups else 0.0


def show_workers(summary: dict[str, Any]) -> None:
    """Print a ``--workers`` summary as rich tables."""
    from rich.table import Table

    out = show_sections(summary, ("orders", "limits", "cache", "notifications", "payments"))
    # One column per worker: the figures read down, and a few workers fit any terminal.
    workers = summary["workers"]
    fields = list(next(iter(workers.values()))) if workers else []
    table = Table("", *workers, title="workers", title_justify="left", min_width=50)
    for name in fields:
        table.add_row(name, *(str(row[name]) for row in workers.values()))
    out.print(table)


@contextlib.contextmanager
def progress(args: argparse.Namespace) -> Iterator[Callable[..., None]]:
    """A rich progress bar over the run's duration; a no-op with --quiet.

    The bar and its clock both measure from the moment the first order is due (``started``),
    and the clock stops when the last order has finished; log records go above the bar.
    """
    if args.quiet:
        yield lambda tally, done=False: None
        return
    from rich.progress import BarColumn, Progress, TextColumn

    columns = (
        TextColumn("[bold]orders[/]"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console(), transient=False) as bar:
        task = bar.add_task("run", total=args.duration, status="", clock="")

        def advance(tally: Tally, done: bool = False) -> None:
            elapsed = time.monotonic() - tally.started
            status = (
                f"{tally.completed} done · {tally.failed} failed · {tally.rejected} rejected"
                f" · breaker trips {tally.breaker_trips}"
            )
            bar.update(
                task,
                completed=args.duration if done else min(elapsed, args.duration),
                clock=f"{elapsed:5.1f} s / {args.duration:g} s",
                status=status,
            )

        yield advance


async def summarize(
    tally: Tally,
    where: str,
    local: TTLCache[dict[str, Any]],
    remote: DistributedCache[dict[str, Any]],
    rate: RateLimiter,
    breaker: CircuitBreaker,
    monitor: ResourceMonitor,
    profiler: Profiler,
) -> dict[str, Any]:
    """The run's figures, as plain data (``show`` prints them)."""
    # The monitor's timer sample holds CPU use over its interval; an ad-hoc reading has none.
    stats = monitor.latest or await monitor.get_current_stats()
    requests = await monitor.get_current_stats()
    profile = await profiler.get_profile()
    lookups = tally.local_hits + tally.distributed_hits + tally.loads
    nodes = remote.stats().nodes
    for name, node in nodes.items():
        if not node.up:
            tally.problem(f"distributed cache node {name} is down at the end")
    return {
        "storage": where,
        "seconds": round(time.monotonic() - tally.started, 2),
        "problems": list(tally.problems),
        "orders": {
            "emitted": tally.emitted,
            "completed": tally.completed,
            "failed": tally.failed,
            "rejected": tally.rejected,
        },
        "notifications": dict(tally.notifications),
        "cache": {
            "lookups": lookups,
            "local hit rate": round(tally.local_hits / lookups, 3) if lookups else 0.0,
            "distributed hit rate": round(tally.distributed_hits / lookups, 3) if lookups else 0.0,
            "loads from the database": tally.loads,
            "distributed tier errors": tally.cache_errors,
            "local hits": local.stats().hits,
            "local items": local.stats().items,
        },
        "nodes": {
            name: {
                "up": node.up,
                "commands": node.ops,
                "errors": node.errors + node.timeouts,
                "marked down": node.times_marked_down,
            }
            for name, node in nodes.items()
        },
        "payments": {
            "calls": tally.payment_calls,
            "declined cards": tally.declined,
            "transient errors (retried)": tally.transient_errors,
            "outage errors": tally.outage_errors,
            "breaker trips": tally.breaker_trips,
            "waits on the open breaker": tally.breaker_waits,
            "limiter acquisitions": rate.stats().acquired,
        },
        "profile": {
            name: {
                "count": s.count,
                "mean ms": round(s.mean * 1e3, 2),
                "p95 ms": round(s.p95 * 1e3, 2),
            }
            for name, s in profile.stats.items()
        },
        "system": {
            "cpu %": round(stats.cpu.usage_percent, 1),
            "memory %": stats.memory.percent,
            "process rss MiB": round(stats.process.memory_rss / 2**20, 1),
            "requests": requests.request_count,
            "request errors": requests.error_count,
            "mean latency ms": round(requests.latency_sum / requests.request_count * 1e3, 2)
            if requests.request_count
            else 0.0,
        },
    }


def show_sections(summary: dict[str, Any], sections: Sequence[str]) -> Any:
    """Print the summary's heading, its problems and ``sections``; return the console."""
    from rich.table import Table

    out = console()
    out.print(f"\n[bold]mtaio demo[/] — {summary['seconds']} s on {summary['storage']}\n")
    if summary["problems"]:
        out.print("[bold yellow]degraded, and carried on:[/]")
        for problem in summary["problems"]:
            out.print(f"  - {problem}", highlight=False)
        out.print()
    for section in sections:
        table = Table(title=section, title_justify="left", show_header=False, min_width=50)
        for key, value in summary[section].items():
            table.add_row(key, str(value))
        out.print(table)
    return out


def show(summary: dict[str, Any]) -> None:
    """Print the summary as rich tables."""
    from rich.table import Table

    out = show_sections(summary, ("orders", "notifications", "cache", "payments", "system"))
    columns = ("node", "up", "commands", "errors", "marked down")
    table = Table(*columns, title="cache nodes", title_justify="left", min_width=50)
    for name, row in summary["nodes"].items():
        table.add_row(name, *(str(row[c]) for c in columns[1:]))
    out.print(table)
    table = Table("trace", "count", "mean ms", "p95 ms", title="profile", title_justify="left")
    for name, row in summary["profile"].items():
        table.add_row(name, str(row["count"]), str(row["mean ms"]), str(row["p95 ms"]))
    out.print(table)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; a malformed flag or URL exits with status 2 and a usage message."""
    parser = argparse.ArgumentParser(
        prog="demo", description=__doc__.split("\n\n")[0], epilog="Runs on embedded defaults."
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds to run (default 8)")
    parser.add_argument("--rate", type=float, default=150.0, help="orders per second (default 150)")
    parser.add_argument(
        "--redis",
        action="append",
        default=[],
        metavar="URL",
        help="a redis:// URL to use instead of the embedded nodes (repeat for several)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="run as N processes sharing the limits, the cache and the channel (default 1)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # set by --workers for each child
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0:
        parser.error("--duration and --rate must be positive")
    if args.rate * args.duration < 1:
        parser.error("--rate times --duration must make at least one order")
    for url in args.redis:
        try:
            node_address(url)
        except ValueError as error:
            parser.error(f"--redis: {error} (expected redis://host:port)")
    return args


def positive_int(text: str) -> int:
    """``--workers``: a whole number of at least one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_CONSOLE: list[Any] = []


def console() -> Any:
    """The one rich Console for the progress bar, the log records and the summary.

    Sharing it is what makes rich print log records above the live progress bar instead of
    through it.
    """
    if not _CONSOLE:
        from rich.console import Console

        _CONSOLE.append(Console())
    return _CONSOLE[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        # One of --workers' processes: logs to stderr (the parent keeps its end), the
        # record as one JSON line on stdout.
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", force=True)
        logging.getLogger("mtaio").setLevel(logging.ERROR)
        record = asyncio.run(run(args, spec=WorkerSpec.loads(args.worker)))
        print("RESULT " + json.dumps(record), flush=True)
        return 0
    from rich.logging import RichHandler

    # mtaio logs (never configures logging); show its warnings, such as the circuit
    # breaker opening, and the demo's own reports.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console(), show_path=False, show_time=False)],
        force=True,
    )
    if args.quiet:
        logging.getLogger("mtaio").setLevel(logging.ERROR)
    summary = asyncio.run(run(args))
    if args.workers > 1:
        show_workers(summary)
    else:
        show(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
