"""prometheus_client's conveniences on our metrics, a registry exported alone, stats()
sources, reprs and the package logger's NullHandler."""

from __future__ import annotations

import asyncio
import logging
import math
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from mtaio.exceptions import ConfigurationTypeError, MonitoringError
from mtaio.monitoring import (
    Counter,
    Gauge,
    Histogram,
    MetricsRegistry,
    Profiler,
    RegistryCollector,
    ResourceMonitor,
    StatsSource,
    serve_registry,
)
from mtaio.typing import ManualClock

if TYPE_CHECKING:
    from conftest import FakeReader


async def test_histogram_time_as_context_managers_and_decorators() -> None:
    clock = ManualClock(0.0)
    h = Histogram("op_seconds", buckets=[1.0, 5.0])

    with h.time(clock=clock) as timer:
        clock.advance(0.5)
    assert timer.duration == 0.5
    async with h.time({"kind": "a"}, clock=clock):
        clock.advance(2.0)

    @h.time(clock=clock)
    def sync_op(x: int) -> int:
        clock.advance(3.0)
        return x

    @h.time(clock=clock)
    async def async_op() -> None:
        clock.advance(4.0)
        raise ValueError("boom")

    assert sync_op(7) == 7
    with pytest.raises(ValueError, match="boom"):
        await async_op()  # timed even when it raises
    assert h.labels().count == 3
    assert h.labels().sum == 0.5 + 3.0 + 4.0
    assert h.labels(kind="a").sum == 2.0
    assert sync_op.__name__ == "sync_op"


async def test_track_inprogress_counts_running_blocks() -> None:
    g = Gauge("running")
    seen: list[float] = []

    @g.track_inprogress()
    async def job() -> None:
        await asyncio.sleep(0)
        seen.append(g.get())

    await asyncio.gather(job(), job(), job())
    assert max(seen) == 3
    assert g.get() == 0
    with g.track_inprogress({"q": "a"}):
        assert g.get({"q": "a"}) == 1
    assert g.get({"q": "a"}) == 0

    @g.track_inprogress()
    def sync_job() -> float:
        return g.get()

    assert sync_job() == 1


async def test_count_exceptions() -> None:
    c = Counter("failures")

    @c.count_exceptions(ValueError)
    async def flaky(fail: bool) -> None:
        if fail:
            raise ValueError("flaky")

    await flaky(False)
    with pytest.raises(ValueError, match="flaky"):
        await flaky(True)
    with pytest.raises(KeyError), c.count_exceptions((KeyError, IndexError)):
        raise KeyError("x")
    with pytest.raises(TypeError), c.count_exceptions(ValueError):
        raise TypeError  # not counted
    async with c.count_exceptions():
        pass
    assert c.get() == 2
    with pytest.raises(ConfigurationTypeError, match="exception"):
        c.count_exceptions(())


def test_gauge_set_function(caplog: pytest.LogCaptureFixture) -> None:
    items = [1, 2, 3]
    g = Gauge("queue_len")
    g.set_function(lambda: len(items))
    assert g.get() == 3
    items.append(4)
    assert g.get() == 4
    assert "function" in repr(g.labels())
    g.set_function(lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="mtaio.monitoring"):
        assert math.isnan(g.get())
    assert "gauge function" in caplog.text
    g.set_function(None)
    g.set(2)
    assert g.get() == 2


@dataclass(frozen=True)
class _Inner:
    trips: int


@dataclass(frozen=True)
class _CacheStats:
    hits: int
    misses: int
    hit_rate: float
    open: bool
    label: str
    breaker: _Inner
    per_shard: dict[str, int] = field(default_factory=dict)


class _Cache:
    def __init__(self) -> None:
        self.hits = 0

    def stats(self) -> _CacheStats:
        return _CacheStats(
            self.hits, 2, self.hits / (self.hits + 2), True, "x", _Inner(1), {"a": 5}
        )


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
    return body.decode()


async def test_registry_served_alone_with_a_stats_source() -> None:
    registry = MetricsRegistry()
    registry.counter("jobs").inc(3)
    registry.gauge("depth").set(2)
    registry.histogram("lat").observe(0.2)
    cache = _Cache()
    assert isinstance(cache, StatsSource)
    registry.register_stats("cache", cache, counters=["hits", "misses"])
    cache.hits = 6
    async with await serve_registry(registry) as server:
        text = await asyncio.to_thread(_scrape, server.url)
    assert "jobs_total 3.0" in text
    assert "depth 2.0" in text
    assert "lat_count 1.0" in text
    assert "cache_hits_total 6.0" in text
    assert "# TYPE cache_hit_rate gauge" in text
    assert "cache_hit_rate 0.75" in text
    assert "cache_open 1.0" in text
    assert "cache_breaker_trips 1.0" in text
    assert "cache_per_shard_a 5.0" in text
    assert "label" not in text
    assert registry.value("cache.hit_rate") == 0.75
    assert registry.value("cache.nope") is None
    with pytest.raises(MonitoringError, match="already registered"):
        registry.register_stats("cache", cache)
    with pytest.raises(ConfigurationTypeError, match="counters names fields"):
        registry.register_stats("other", cache, counters=["nope"])
    with pytest.raises(ConfigurationTypeError, match="dataclass"):
        registry.register_stats("bad", _NotDataclass())
    assert registry.unregister_stats("cache") is True
    assert registry.unregister_stats("cache") is False


class _NotDataclass:
    def stats(self) -> dict[str, int]:
        return {"a": 1}


async def test_threshold_on_a_stats_source_field(reader: FakeReader) -> None:
    cache = _Cache()
    monitor = ResourceMonitor(reader=reader)
    monitor.register_stats("cache", cache)
    fired: list[float] = []
    monitor.on_threshold_exceeded(lambda metric, value, limit: fired.append(value))
    monitor.set_threshold("cache.hit_rate", 0.5, direction="below")
    await monitor.sample()
    assert fired == [0.0]
    assert monitor.stats().unrecorded_thresholds == ()


def test_a_broken_source_does_not_break_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = MetricsRegistry()
    cache = _Cache()
    registry.register_stats("cache", cache)
    registry.counter("ok").inc()
    cache.hits = -2  # hits / (hits + 2) divides by zero
    reg = prometheus_client.CollectorRegistry()
    reg.register(RegistryCollector(registry))
    with caplog.at_level(logging.ERROR, logger="mtaio.monitoring"):
        text = prometheus_client.generate_latest(reg).decode()
    assert "ok_total 1.0" in text
    assert "stats source 'cache' failed" in caplog.text
    with pytest.raises(ConfigurationTypeError, match="registry"):
        RegistryCollector(object())  # type: ignore[arg-type]


def test_reprs_and_null_handler() -> None:
    c = Counter("hits")
    c.inc(2)
    assert repr(c) == "Counter('hits', series=1)"
    assert repr(c.labels()) == "<CounterChild value=2>"
    h = Histogram("lat", buckets=[1.0])
    h.observe(0.5)
    assert repr(h) == "Histogram('lat', buckets=1, series=1)"
    assert repr(h.labels()) == "<HistogramChild count=1 sum=0.5>"
    assert repr(Gauge("g").labels()) == "<GaugeChild value=0>"
    assert repr(MetricsRegistry()) == "<MetricsRegistry metrics=0 sources=0>"
    p = Profiler(enabled=False)
    assert repr(p) == "<Profiler disabled traces=0>"
    monitor = ResourceMonitor()
    assert "track" in repr(monitor.track_request("x")).lower()
    handlers = logging.getLogger("mtaio.monitoring").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
