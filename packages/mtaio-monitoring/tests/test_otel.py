"""OpenTelemetry export, read back through the SDK's in-memory reader and exporter."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from mtaio.exceptions import ConfigurationTypeError
from mtaio.monitoring import (
    MetricsRegistry,
    MissingDependencyError,
    OTelMetrics,
    Profiler,
    export_spans,
)
from mtaio.typing import ManualClock

sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
sdk_export = pytest.importorskip("opentelemetry.sdk.metrics.export")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
sdk_trace_export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


def _points(reader: Any) -> dict[str, list[tuple[dict[str, Any], float]]]:
    out: dict[str, list[tuple[dict[str, Any], float]]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = [
                    (dict(p.attributes or {}), p.value) for p in metric.data.data_points
                ]
    return out


class _Source:
    def stats(self) -> Any:
        from mtaio.monitoring import MonitorStats

        return MonitorStats(True, 1.0, 7, 0, 3, 1, 0, 0, 0, 5, 1, 0, 2)


def test_registry_through_the_metrics_api() -> None:
    reader = sdk_export.InMemoryMetricReader()
    provider = sdk_metrics.MeterProvider(metric_readers=[reader])
    registry = MetricsRegistry()
    registry.counter("jobs").inc(3, {"kind": "email"})
    registry.gauge("depth").set(4)
    hist = registry.histogram("lat")
    for v in (0.1, 0.2, 0.3):
        hist.observe(v)
    registry.register_stats("mon", _Source(), counters=["samples"])
    bridge = OTelMetrics(registry, provider, prefix="app.")
    points = _points(reader)
    assert points["app.jobs"] == [({"kind": "email"}, 3.0)]
    assert points["app.depth"] == [({}, 4.0)]
    assert points["app.lat.count"] == [({}, 3)]
    assert points["app.lat.sum"][0][1] == pytest.approx(0.6)
    quantiles = {a["quantile"]: v for a, v in points["app.lat.quantile"]}
    assert quantiles["0.5"] == pytest.approx(0.2)
    assert points["app.mon.samples"] == [({}, 7.0)]
    assert points["app.mon.running"] == [({}, 1.0)]
    # read live, and metrics created later appear after sync()
    registry.counter("jobs").inc(1, {"kind": "email"})
    registry.gauge("late").set(1)
    assert bridge.sync() == 1
    assert bridge.sync() == 0
    points = _points(reader)
    assert points["app.jobs"] == [({"kind": "email"}, 4.0)]
    assert points["app.late"] == [({}, 1.0)]
    assert "instruments" in repr(bridge)
    with pytest.raises(ConfigurationTypeError, match="registry"):
        OTelMetrics(object(), provider)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="prefix"):
        OTelMetrics(registry, provider, prefix=1)  # type: ignore[arg-type]


async def test_profile_as_nested_spans() -> None:
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(sdk_trace_export.SimpleSpanProcessor(exporter))
    clock = ManualClock(10.0)
    profiler = Profiler(clock=clock)

    @profiler.trace(name="inner")
    async def inner() -> None:
        clock.advance(0.25)
        raise ValueError("nope")

    @profiler.trace(name="outer")
    async def outer() -> None:
        clock.advance(0.5)
        with pytest.raises(ValueError, match="nope"):
            await inner()

    await outer()
    profile = await profiler.get_profile()
    assert export_spans(profile, provider, wall_offset=1000.0) == 2
    spans = {s.name: s for s in exporter.get_finished_spans()}
    outer_span, inner_span = spans["outer"], spans["inner"]
    assert inner_span.parent is not None
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert inner_span.context.trace_id == outer_span.context.trace_id
    assert outer_span.start_time == int(1010.0 * 1e9)
    assert inner_span.end_time - inner_span.start_time == int(0.25 * 1e9)
    assert inner_span.status.status_code.name == "ERROR"
    assert inner_span.attributes["exception.type"] == "ValueError"
    assert outer_span.attributes["mtaio.task"]
    with pytest.raises(ConfigurationTypeError, match="profile"):
        export_spans(object())  # type: ignore[arg-type]


def test_missing_opentelemetry_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingDependencyError, match=r"mtaio-monitoring\[otel\]"):
        OTelMetrics(MetricsRegistry())
