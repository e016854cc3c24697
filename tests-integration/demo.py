"""mtaio demo: a small order service built from every mtaio package.

Orders arrive as events at a steady rate. Each one runs through a pipeline (validate, enrich,
charge): customer profiles come from a two-tier cache (a local TTLCache in front of a
DistributedCache replicated over two embedded CacheNodes, or your Redis servers), payments go to a
simulated downstream that is rate- and concurrency-limited, retried with back-off and guarded by a
circuit breaker (the downstream has an outage in the middle of the run). A TaskExecutor bounds how
many orders are in flight, a Channel fans results out, and a ResourceMonitor and a Profiler watch
it all. At the end: a summary of what happened.

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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtaio.cache import CacheNode, DistributedCache, TTLCache
from mtaio.core import TaskExecutor
from mtaio.data import Pipeline, Stage
from mtaio.events import Channel, EventEmitter
from mtaio.exceptions import CircuitBreakerError, RetryError, StageError
from mtaio.monitoring import Profiler, ResourceMonitor
from mtaio.resources import CircuitBreaker, ConcurrencyLimiter, RateLimiter, Retry

Order = dict[str, Any]


class InvalidOrder(ValueError):
    """An order the validation stage refuses."""


class PaymentDeclined(ConnectionError):
    """The simulated payment service failed (transiently, or during its outage)."""


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
    payment_calls: int = 0
    payment_errors: int = 0
    breaker_rejections: int = 0
    breaker_trips: Callable[[], int] = lambda: 0
    notifications: Counter[str] = field(default_factory=Counter)


class PaymentService:
    """A downstream that answers in a few milliseconds, fails now and then, and has an outage."""

    def __init__(self, rng: random.Random, outage: tuple[float, float], tally: Tally) -> None:
        self._rng = rng
        self._outage = outage
        self._tally = tally
        self._origin = time.monotonic()

    async def charge(self, order: Order) -> str:
        self._tally.payment_calls += 1
        await asyncio.sleep(self._rng.uniform(0.002, 0.008))
        elapsed = time.monotonic() - self._origin
        if self._outage[0] <= elapsed < self._outage[1] or self._rng.random() < 0.03:
            self._tally.payment_errors += 1
            raise PaymentDeclined(f"payment for order {order['id']} failed")
        return f"pay-{order['id']:06d}"


class LayeredProfiles:
    """Customer profiles: local TTLCache, then the DistributedCache, then the 'database'."""

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
        profile = await self.remote.get(key)
        if profile is not None:
            self._tally.distributed_hits += 1
        else:
            self._tally.loads += 1
            await asyncio.sleep(0.004)  # the database is slower than either cache tier
            tier = "gold" if customer_id % 7 == 0 else "standard"
            profile = {"id": customer_id, "tier": tier, "country": "JP"}
            await self.remote.set(key, profile, ttl=30.0)
        await self.local.set(key, profile)
        return profile


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
    def __init__(
        self,
        payments: PaymentService,
        rate: RateLimiter,
        slots: ConcurrencyLimiter,
        breaker: CircuitBreaker,
        retry: Retry,
    ) -> None:
        super().__init__()
        self._payments = payments
        self._rate = rate
        self._slots = slots
        self._breaker = breaker
        self._retry = retry

    async def _attempt(self, order: Order) -> str:
        await self._rate.acquire()
        async with self._slots:
            return await self._breaker.call(self._payments.charge, order)

    async def process(self, order: Order) -> Order:
        payment_id = await self._retry.call(self._attempt, order)
        return {**order, "payment_id": payment_id}


async def order_source(rate: float, duration: float, seed: int) -> AsyncIterator[Order]:
    """Orders at ``rate`` per second for ``duration`` seconds; about 2% are malformed."""
    rng = random.Random(seed)
    pacing = RateLimiter(rate, burst=max(1.0, rate / 10))
    deadline = time.monotonic() + duration
    order_id = 0
    while time.monotonic() < deadline:
        await pacing.acquire()
        order_id += 1
        yield {
            "id": order_id,
            "customer_id": rng.randrange(1, 400),
            "quantity": 0 if rng.random() < 0.02 else rng.randint(1, 5),
            "unit_price": round(rng.uniform(5, 120), 2),
        }


@contextlib.asynccontextmanager
async def storage(redis_urls: Sequence[str]) -> AsyncIterator[tuple[list[Any], str]]:
    """The distributed tier's nodes: two embedded CacheNodes, or the given Redis servers."""
    if redis_urls:
        yield list(redis_urls), f"{len(redis_urls)} Redis server(s)"
        return
    async with CacheNode("demo-a") as a, CacheNode("demo-b") as b:
        yield [a.address, b.address], f"2 embedded CacheNodes ({a.address[1]}, {b.address[1]})"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the service for ``args.duration`` seconds and return the summary figures."""
    tally = Tally()
    rng = random.Random(args.seed)
    emitter = EventEmitter(name="orders")
    notifications: Channel[Order] = Channel("notifications")
    monitor = ResourceMonitor(interval=0.5)
    profiler = Profiler()
    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=0.5, failure_on=PaymentDeclined)
    retry = Retry(attempts=3, delay=0.01, factor=2.0, retry_on=PaymentDeclined)
    rate = RateLimiter(args.rate * 1.2, burst=20)
    slots = ConcurrencyLimiter(16)
    tally.breaker_trips = lambda: breaker.stats().opened
    outage = (args.duration * 0.4, args.duration * 0.55)
    payments = PaymentService(rng, outage, tally)
    local: TTLCache[dict[str, Any]] = TTLCache(default_ttl=2.0, max_size=200)

    # Everything opened here is closed on the way out, also when the run fails.
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(profiler.close)
        stack.push_async_callback(local.close)
        nodes, where = await stack.enter_async_context(storage(args.redis))
        remote: DistributedCache[dict[str, Any]] = await stack.enter_async_context(
            DistributedCache(
                nodes, replication_factor=min(2, len(nodes)), timeout=0.5, namespace="mtaio-demo"
            )
        )
        stack.push_async_callback(notifications.close)
        profiles = LayeredProfiles(local, remote, tally)
        pipeline: Pipeline[Order, Order] = Pipeline()
        pipeline.add_stage(Validate()).add_stage(Enrich(profiles))
        pipeline.add_stage(Charge(payments, rate, slots, breaker, retry))
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
                        tally.breaker_rejections += 1
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
                async for order in order_source(args.rate, args.duration, args.seed):
                    await emitter.emit("order.created", order)
                    tally.emitted += 1
                    advance(tally)
                for task_handle in handles:
                    with contextlib.suppress(StageError):
                        await task_handle
                advance(tally)
        await notifications.close()
        await counter
        summary = await summarize(tally, where, local, remote, rate, breaker, monitor, profiler)
        await remote.clear()
    return summary


@contextlib.contextmanager
def progress(args: argparse.Namespace) -> Any:
    """A rich progress bar over the run's duration; a no-op with --quiet."""
    if args.quiet:
        yield lambda tally: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]orders[/]"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("run", total=args.duration, status="")

        def advance(tally: Tally) -> None:
            elapsed = min(time.monotonic() - tally.started, args.duration)
            status = (
                f"{tally.completed} done · {tally.failed} failed · {tally.rejected} rejected"
                f" · breaker trips {tally.breaker_trips()}"
            )
            bar.update(task, completed=elapsed, status=status)

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
    # The monitor's timer sample holds CPU use over its interval; an ad-hoc reading has none.
    stats = monitor.latest or await monitor.get_current_stats()
    requests = await monitor.get_current_stats()
    profile = await profiler.get_profile()
    lookups = tally.local_hits + tally.distributed_hits + tally.loads
    return {
        "storage": where,
        "seconds": round(time.monotonic() - tally.started, 2),
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
            "local": {"hits": local.stats().hits, "items": local.stats().items},
            "distributed nodes": {
                name: {"up": node.up, "commands": node.ops}
                for name, node in remote.stats().nodes.items()
            },
        },
        "payments": {
            "calls": tally.payment_calls,
            "errors": tally.payment_errors,
            "breaker trips": breaker.stats().opened,
            "rejected by the open breaker": breaker.stats().rejected,
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
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"\n[bold]mtaio demo[/] — {summary['seconds']} s on {summary['storage']}\n")
    for section in ("orders", "notifications", "cache", "payments", "system"):
        table = Table(title=section, title_justify="left", show_header=False, min_width=50)
        for key, value in summary[section].items():
            table.add_row(key, str(value))
        console.print(table)
    table = Table(title="profile", title_justify="left")
    for column in ("trace", "count", "mean ms", "p95 ms"):
        table.add_column(column)
    for name, row in summary["profile"].items():
        table.add_row(name, str(row["count"]), str(row["mean ms"]), str(row["p95 ms"]))
    console.print(table)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
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
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.quiet:
        # mtaio logs (never configures logging); show its warnings, such as the circuit
        # breaker opening, above the progress bar.
        from rich.logging import RichHandler

        logging.basicConfig(
            level=logging.WARNING,
            format="%(name)s: %(message)s",
            handlers=[RichHandler(show_path=False)],
        )
    summary = asyncio.run(run(args))
    show(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
