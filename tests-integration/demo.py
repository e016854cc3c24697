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

    python tests-integration/demo.py [--duration 8] [--rate 150] [--redis redis://host:port ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mtaio.cache import CacheNode, DistributedCache, TTLCache
from mtaio.core import TaskExecutor
from mtaio.data import Pipeline, Stage
from mtaio.events import Channel, EventEmitter
from mtaio.exceptions import CacheError, CircuitBreakerError, RetryError, StageError
from mtaio.monitoring import Profiler, ResourceMonitor
from mtaio.resources import CircuitBreaker, CircuitState, ConcurrencyLimiter, RateLimiter, Retry

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
            self._remote_failed(error)
            profile = None
        if profile is not None:
            self._tally.distributed_hits += 1
        else:
            self._tally.loads += 1
            await asyncio.sleep(0.004)  # the database is slower than either cache tier
            tier = "gold" if customer_id % 7 == 0 else "standard"
            profile = {"id": customer_id, "tier": tier, "country": "JP"}
            try:
                await self.remote.set(key, profile, ttl=30.0)
            except CacheError as error:
                self._remote_failed(error)
        await self.local.set(key, profile)
        return profile

    def _remote_failed(self, error: CacheError) -> None:
        self._tally.cache_errors += 1
        if self._tally.cache_errors == 1:  # reported once; the summary counts the rest
            self._tally.problem(
                f"distributed cache unavailable, falling back to the database ({error})"
            )


class Validate(Stage[Order, Order]):
    async def process(self, order: Order) -> Order:
        if order["quantity"] <= 0 or "customer_id" not in order:
            raise InvalidOrder(f"order {order['id']} is malformed")
        return order


class Enrich(Stage[Order, Order]):
    def __init__(self, profiles: LayeredProfiles) -> None:
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
            await self._rate.acquire()
            try:
                async with self._slots:
                    payment_id = await self._breaker.call(self._payments.charge, order)
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


async def run(args: argparse.Namespace, emitter: EventEmitter | None = None) -> dict[str, Any]:
    """Run the service for ``args.duration`` seconds and return the summary figures.

    ``emitter`` receives the orders (``order.created``) and the run's phases: ``demo.started``
    when the first order is due, ``demo.drained`` when the last one has finished, before
    the summary and the clean-up.
    """
    tally = Tally()
    rng = random.Random(args.seed)
    emitter = emitter if emitter is not None else EventEmitter(name="orders")
    notifications: Channel[Order] = Channel("notifications")
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
    rate = RateLimiter(args.rate * 1.2, burst=20)
    slots = ConcurrencyLimiter(16)
    payments = PaymentService(rng, outage, tally)
    local: TTLCache[dict[str, Any]] = TTLCache(default_ttl=2.0, max_size=200)

    # Everything opened here is closed on the way out, also when the run fails.
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(profiler.close)
        stack.push_async_callback(local.close)
        nodes, where = await stack.enter_async_context(storage(args.redis, tally))
        remote: DistributedCache[dict[str, Any]] = await stack.enter_async_context(
            DistributedCache(
                nodes, replication_factor=min(2, len(nodes)), timeout=0.5, namespace="mtaio-demo"
            )
        )
        stack.push_async_callback(notifications.close)
        profiles = LayeredProfiles(local, remote, tally)
        pipeline: Pipeline[Order, Order] = Pipeline()
        pipeline.add_stage(Validate()).add_stage(Enrich(profiles))
        patience = breaker.reset_timeout + (outage[1] - outage[0]) + 2.0
        pipeline.add_stage(Charge(payments, rate, slots, breaker, retry, tally, patience))
        subscriber = await notifications.subscribe(["order.*"], maxsize=10_000)

        async def handle(order: Order) -> None:
            async with monitor.track_request("order"), profiler.trace_context("order"):
                try:
                    done = await pipeline.process(order)
                except StageError as error:
                    cause = error.__cause__
                    if isinstance(cause, InvalidOrder):
                        tally.rejected += 1
                        await notifications.publish(order, topic="order.rejected")
                        return
                    tally.failed += 1
                    if isinstance(cause, CircuitBreakerError) or (
                        isinstance(cause, RetryError)
                        and isinstance(cause.last_error, CircuitBreakerError)
                    ):
                        tally.problem("orders failed while the payment service stayed down")
                    await notifications.publish(order, topic="order.failed")
                    raise
            tally.completed += 1
            assert done is not None
            await notifications.publish(done, topic="order.completed")

        async def count_notifications() -> None:
            async for message in subscriber:
                tally.notifications[message.topic or ""] += 1

        counter = asyncio.create_task(count_notifications())
        async with TaskExecutor(limit=64) as executor, monitor, pipeline:
            handles = []

            @emitter.on("order.created")
            async def on_order(event: Any) -> None:
                handles.append(executor.submit(handle(event.data)))

            with progress(args) as advance:
                tally.started = time.monotonic()
                payments.start()
                await emitter.emit("demo.started", {"seed": args.seed})
                async for order in order_source(args.rate, args.duration, args.seed):
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
        # Leave the nodes as we found them; a node that is down now only costs a report.
        try:
            await remote.clear()
        except CacheError as error:
            tally.problem(f"could not clear the distributed cache at the end ({error})")
        return await summarize(tally, where, local, remote, rate, breaker, monitor, profiler)


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


def show(summary: dict[str, Any]) -> None:
    """Print the summary as rich tables."""
    from rich.table import Table

    out = console()
    out.print(f"\n[bold]mtaio demo[/] — {summary['seconds']} s on {summary['storage']}\n")
    if summary["problems"]:
        out.print("[bold yellow]degraded, and carried on:[/]")
        for problem in summary["problems"]:
            out.print(f"  - {problem}", highlight=False)
        out.print()
    for section in ("orders", "notifications", "cache", "payments", "system"):
        table = Table(title=section, title_justify="left", show_header=False, min_width=50)
        for key, value in summary[section].items():
            table.add_row(key, str(value))
        out.print(table)
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
    show(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
