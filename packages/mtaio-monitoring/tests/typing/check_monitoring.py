"""Type-only checks: mypy reads this file, pytest never runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_type

from mtaio.monitoring import (
    Counter,
    Gauge,
    Histogram,
    MonitorStats,
    Profile,
    Profiler,
    ResourceMonitor,
    Span,
    SystemStats,
    Threshold,
    TrackedRequest,
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
