"""Type-only checks: mypy reads this file, pytest never runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_type

from mtaio.monitoring import (
    Counter,
    ExceptionCounter,
    Gauge,
    Histogram,
    InProgress,
    MetricsRegistry,
    MetricsServer,
    MonitorStats,
    OTelMetrics,
    Profile,
    Profiler,
    ResourceMonitor,
    Sampling,
    Span,
    SystemStats,
    Threshold,
    Timer,
    TrackedRequest,
    export_spans,
    serve_registry,
)
from mtaio.monitoring._metrics import CounterChild, HistogramChild

profiler = Profiler(True)


@profiler.trace
async def fetch(url: str, *, retries: int = 3) -> bytes:
    return url.encode()


@profiler.trace("parse")
def parse(data: bytes) -> dict[str, int]:
    return {"n": len(data)}


@profiler.trace(name="kw")
async def kw(x: int) -> int:
    return x


async def use(monitor: ResourceMonitor) -> None:
    assert_type(await fetch("u", retries=1), bytes)
    assert_type(parse(b"x"), dict[str, int])
    assert_type(await kw(1), int)
    assert_type(profiler.trace_context("x"), Span)
    assert_type(await profiler.get_profile(), Profile)
    assert_type(await monitor.get_current_stats(), SystemStats)
    assert_type(monitor.latest, SystemStats | None)
    assert_type(monitor.stats(), MonitorStats)
    assert_type(monitor.set_threshold("cpu.usage_percent", 90), Threshold)
    assert_type(monitor.counter("c"), Counter)
    assert_type(monitor.counter("c").labels(route="/"), CounterChild)
    assert_type(monitor.gauge("g"), Gauge)
    assert_type(monitor.histogram("h"), Histogram)
    assert_type(monitor.histogram("h").labels(), HistogramChild)
    assert_type(monitor.track_request(), TrackedRequest)
    async with monitor.track_request() as req:
        assert_type(req, TrackedRequest)

    @monitor.on_threshold_exceeded
    def handler(metric: str, value: float, threshold: float) -> None: ...

    same: Callable[[str, float, float], None] = handler  # the decorator returns it unchanged
    assert same is handler
    monitor.record_metric("x", 1.5, labels={"a": "b"})
    await fetch(1)  # type: ignore[arg-type]  # the decorator keeps the signature


latency = Histogram("db_seconds")
running = Gauge("jobs_running")
failures = Counter("failures")


@latency.time()
async def query(sql: str) -> list[int]:
    return [len(sql)]


@running.track_inprogress()
def work(n: int) -> int:
    return n


@failures.count_exceptions(ValueError)
async def flaky() -> str:
    return "ok"


async def conveniences() -> None:
    assert_type(await query("select"), list[int])
    assert_type(work(1), int)
    assert_type(await flaky(), str)
    with latency.time() as timer:
        assert_type(timer, Timer)
    async with running.track_inprogress() as tracking:
        assert_type(tracking, InProgress)
    with failures.count_exceptions() as counting:
        assert_type(counting, ExceptionCounter)
    running.set_function(lambda: 3.0)
    work("x")  # type: ignore[arg-type]  # the decorators keep the signature
    with profiler.sampling(0.01) as block:
        assert_type(block, Sampling)
    registry = MetricsRegistry()
    server = await serve_registry(registry)
    assert_type(server, MetricsServer)
    assert_type(OTelMetrics(registry).sync(), int)
    assert_type(export_spans(await profiler.get_profile()), int)
