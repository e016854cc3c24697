"""Every bad value is refused at the call, naming the argument, and the object stays usable.

A property test: hypothesis draws (API, parameter, value) from every public constructor and
method of the package and the ten values of issue 15 (-1, 0, NaN, inf, -inf, "5", True,
1.5, 10**12, None). Each parameter has a kind saying which of them are valid; a bad one must
raise ConfigurationError (or its ConfigurationTypeError subclass) whose message names the
parameter, a good one must pass, and the object must work afterwards either way.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtaio.exceptions import ConfigurationError
from mtaio.monitoring import (
    Counter,
    Gauge,
    Histogram,
    MetricsRegistry,
    Profiler,
    PsutilReader,
    ResourceMonitor,
    Threshold,
)
from mtaio.monitoring._server import MetricsServer

VALUES: tuple[object, ...] = (-1, 0, math.nan, math.inf, -math.inf, "5", True, 1.5, 10**12, None)


def _is_real(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


KINDS: dict[str, Callable[[Any], bool]] = {
    # which of VALUES a parameter of this kind accepts
    "finite": lambda v: _is_real(v) and math.isfinite(v),
    "finite>=0": lambda v: _is_real(v) and math.isfinite(v) and v >= 0,
    "finite>0": lambda v: _is_real(v) and math.isfinite(v) and v > 0,
    "int>0": lambda v: type(v) is int and v > 0,
    "int>0 small": lambda v: type(v) is int and 0 < v <= 10**7,
    "quantile": lambda v: _is_real(v) and 0 <= v <= 1,
    "bool": lambda v: v is True,
    "str": lambda v: v == "5",
    "str|None": lambda v: v in ("5", None),
    "mapping|None": lambda v: v is None,
    "callable": lambda v: False,
    "callable|None": lambda v: v is None,
    "int>0|None": lambda v: v is None or (type(v) is int and v > 0),
    "finite|None": lambda v: v is None or (_is_real(v) and math.isfinite(v)),
    "not NaN|None": lambda v: v is None or (_is_real(v) and not math.isnan(v)),
    "pid|None": lambda v: v is None,
    "not NaN": lambda v: _is_real(v) and not math.isnan(v),
    "pid": lambda v: False,  # no pid among the values is a process of ours (1 is not tried)
    "port": lambda v: v == 0,
}


@dataclass(frozen=True)
class Api:
    name: str
    param: str
    kind: str
    make: Callable[[], Any]
    call: Callable[[Any, Any], Any]
    use: Callable[[Any], Any]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _monitor() -> ResourceMonitor:
    return ResourceMonitor(interval=1.0)


def _use_monitor(m: ResourceMonitor) -> None:
    m.record_metric("ok", 1.0)
    m.record_request(0.1)
    m.set_threshold("ok", 5)
    assert m.registry.value("ok") == 1.0


def _use_counter(c: Counter) -> None:
    before = c.labels().get()
    c.inc()
    assert c.labels().get() == before + 1


def _use_gauge(g: Gauge) -> None:
    g.set(3)
    assert g.get() == 3


def _use_hist(h: Histogram) -> None:
    h.observe(0.5)
    assert h.quantile(1.0) >= 0.5


def _use_profiler(p: Profiler) -> None:
    with p.trace_context("ok"):
        pass
    assert p.trace_count >= 1


class _Snap:
    def stats(self) -> object:
        from mtaio.monitoring import MonitorStats

        return MonitorStats(True, 1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _use_registry(r: MetricsRegistry) -> None:
    r.counter("ok").inc()
    assert r.value("ok") == 1


def _nothing(obj: object) -> None:
    pass


M = _monitor
APIS: list[Api] = [
    # constructors: make() builds nothing, call() constructs
    Api(
        "ResourceMonitor",
        "interval",
        "finite>0",
        lambda: None,
        lambda _, v: _use_monitor(ResourceMonitor(interval=v)),
        _nothing,
    ),
    Api(
        "ResourceMonitor",
        "history_size",
        "int>0 small",
        lambda: None,
        lambda _, v: ResourceMonitor(history_size=v),
        _nothing,
    ),
    Api(
        "ResourceMonitor",
        "min_window",
        "finite>=0",
        lambda: None,
        lambda _, v: ResourceMonitor(min_window=v),
        _nothing,
    ),
    Api(
        "ResourceMonitor",
        "alert_on_threshold",
        "bool",
        lambda: None,
        lambda _, v: ResourceMonitor(alert_on_threshold=v),
        _nothing,
    ),
    Api(
        "ResourceMonitor",
        "clock",
        "callable|None",
        lambda: None,
        lambda _, v: ResourceMonitor(clock=v),
        _nothing,
    ),
    Api(
        "ResourceMonitor",
        "reader",
        "mapping|None",
        lambda: None,
        lambda _, v: ResourceMonitor(reader=v),
        _nothing,
    ),
    # ResourceMonitor methods
    Api("set_threshold", "value", "finite", M, lambda m, v: m.set_threshold("x", v), _use_monitor),
    Api("set_threshold", "metric", "str", M, lambda m, v: m.set_threshold(v, 1), _use_monitor),
    Api(
        "set_threshold",
        "sustained",
        "int>0",
        M,
        lambda m, v: m.set_threshold("x", 1, sustained=v),
        _use_monitor,
    ),
    Api(
        "set_threshold",
        "hysteresis",
        "finite>=0",
        M,
        lambda m, v: m.set_threshold("x", 1, hysteresis=v),
        _use_monitor,
    ),
    Api(
        "set_threshold",
        "cooldown",
        "finite>=0",
        M,
        lambda m, v: m.set_threshold("x", 1, cooldown=v),
        _use_monitor,
    ),
    Api(
        "set_threshold",
        "labels",
        "mapping|None",
        M,
        lambda m, v: m.set_threshold("x", 1, labels=v),
        _use_monitor,
    ),
    Api(
        "set_threshold",
        "direction",
        "callable",
        M,
        lambda m, v: m.set_threshold("x", 1, direction=v),
        _use_monitor,
    ),
    Api("remove_threshold", "metric", "str", M, lambda m, v: m.remove_threshold(v), _use_monitor),
    Api("record_metric", "value", "finite", M, lambda m, v: m.record_metric("x", v), _use_monitor),
    Api(
        "record_metric (seen)",
        "value",
        "finite",
        lambda: _seen(M()),
        lambda m, v: m.record_metric("x", v),
        _use_monitor,
    ),
    Api("record_metric", "name", "str", M, lambda m, v: m.record_metric(v, 1.0), _use_monitor),
    Api(
        "record_metric",
        "labels",
        "mapping|None",
        M,
        lambda m, v: m.record_metric("x", 1.0, v),
        _use_monitor,
    ),
    Api("record_metrics", "values", "callable", M, lambda m, v: m.record_metrics(v), _use_monitor),
    Api(
        "record_metrics",
        "values['a']",
        "finite",
        M,
        lambda m, v: m.record_metrics({"a": v}),
        _use_monitor,
    ),
    Api(
        "record_request", "latency", "finite>=0", M, lambda m, v: m.record_request(v), _use_monitor
    ),
    Api(
        "record_request",
        "error",
        "bool",
        M,
        lambda m, v: m.record_request(0.1, error=v),
        _use_monitor,
    ),
    Api(
        "record_request",
        "name",
        "str|None",
        M,
        lambda m, v: m.record_request(0.1, name=v),
        _use_monitor,
    ),
    Api("track_request", "name", "str|None", M, lambda m, v: m.track_request(v), _use_monitor),
    Api(
        "percentile",
        "q",
        "quantile",
        M,
        lambda m, v: m.percentile("cpu.usage_percent", v),
        _use_monitor,
    ),
    Api("history", "last", "int>0|None", M, lambda m, v: m.history(v), _use_monitor),
    Api("values", "last", "int>0|None", M, lambda m, v: m.values("cpu_usage", v), _use_monitor),
    Api("values", "metric", "callable", M, lambda m, v: m.values(v), _use_monitor),
    Api("counter", "name", "str", M, lambda m, v: m.counter(v), _use_monitor),
    Api("gauge", "description", "str", M, lambda m, v: m.gauge("g", v), _use_monitor),
    Api(
        "histogram",
        "reservoir",
        "int>0 small",
        M,
        lambda m, v: m.histogram("h", reservoir=v),
        _use_monitor,
    ),
    Api(
        "histogram",
        "buckets",
        "mapping|None",
        M,
        lambda m, v: m.histogram("h", buckets=v),
        _use_monitor,
    ),
    Api(
        "histogram",
        "buckets",
        "not NaN",
        M,
        lambda m, v: m.histogram("h", buckets=[v]),
        _use_monitor,
    ),
    Api("alert", "message", "str", M, lambda m, v: _run(m.alert(v, metric="m")), _use_monitor),
    Api("alert", "level", "callable", M, lambda m, v: _run(m.alert("x", v)), _use_monitor),
    Api(
        "alert", "value", "not NaN|None", M, lambda m, v: _run(m.alert("x", value=v)), _use_monitor
    ),
    Api(
        "alert",
        "threshold",
        "finite|None",
        M,
        lambda m, v: _run(m.alert("x", threshold=v)),
        _use_monitor,
    ),
    Api(
        "register_stats",
        "source",
        "callable",
        M,
        lambda m, v: m.register_stats("s", v),
        _use_monitor,
    ),
    Api("on_alert", "handler", "callable", M, lambda m, v: m.on_alert(v), _use_monitor),
    Api(
        "prometheus_collector",
        "namespace",
        "str",
        M,
        lambda m, v: m.prometheus_collector(v),
        _use_monitor,
    ),
    # metrics
    Api("Counter", "name", "str", lambda: None, lambda _, v: Counter(v), _nothing),
    Api(
        "Counter.inc",
        "amount",
        "finite>=0",
        lambda: Counter("c"),
        lambda c, v: c.inc(v),
        _use_counter,
    ),
    Api(
        "CounterChild.inc",
        "amount",
        "finite>=0",
        lambda: Counter("c"),
        lambda c, v: c.labels().inc(v),
        _use_counter,
    ),
    Api(
        "Counter.inc",
        "labels",
        "mapping|None",
        lambda: Counter("c"),
        lambda c, v: c.inc(1, v),
        _use_counter,
    ),
    Api(
        "Counter.count_exceptions",
        "exception",
        "callable",
        lambda: Counter("c"),
        lambda c, v: c.count_exceptions(v),
        _use_counter,
    ),
    Api("Gauge.set", "value", "finite", lambda: Gauge("g"), lambda g, v: g.set(v), _use_gauge),
    Api("Gauge.inc", "amount", "finite", lambda: Gauge("g"), lambda g, v: g.inc(v), _use_gauge),
    Api("Gauge.dec", "amount", "finite", lambda: Gauge("g"), lambda g, v: g.dec(v), _use_gauge),
    Api(
        "Gauge.set_function",
        "fn",
        "mapping|None",
        lambda: Gauge("g"),
        lambda g, v: g.set_function(v),
        _use_gauge,
    ),
    Api(
        "Histogram",
        "reservoir",
        "int>0 small",
        lambda: None,
        lambda _, v: Histogram("h", reservoir=v),
        _nothing,
    ),
    Api("Histogram", "description", "str", lambda: None, lambda _, v: Histogram("h", v), _nothing),
    Api(
        "Histogram.observe",
        "value",
        "finite",
        lambda: Histogram("h"),
        lambda h, v: h.observe(v),
        _use_hist,
    ),
    Api(
        "HistogramChild.observe",
        "value",
        "finite",
        lambda: Histogram("h", buckets=[1.0]),
        lambda h, v: h.labels().observe(v),
        _use_hist,
    ),
    Api(
        "Histogram.quantile",
        "q",
        "quantile",
        lambda: Histogram("h"),
        lambda h, v: h.quantile(v),
        _use_hist,
    ),
    Api(
        "Histogram.time",
        "clock",
        "callable",
        lambda: Histogram("h"),
        lambda h, v: h.time(clock=v),
        _use_hist,
    ),
    Api(
        "MetricsRegistry.counter",
        "name",
        "str",
        MetricsRegistry,
        lambda r, v: r.counter(v),
        _use_registry,
    ),
    Api(
        "MetricsRegistry.register_stats",
        "counters",
        "callable",
        MetricsRegistry,
        lambda r, v: r.register_stats("s", _Snap(), counters=v),
        _use_registry,
    ),
    Api(
        "MetricsRegistry.register_stats",
        "name",
        "str",
        MetricsRegistry,
        lambda r, v: r.register_stats(v, _Snap()),
        _use_registry,
    ),
    Api("Threshold", "value", "finite", lambda: None, lambda _, v: Threshold("m", v), _nothing),
    # profiler
    Api(
        "Profiler",
        "enabled",
        "bool",
        lambda: None,
        lambda _, v: _use_profiler(Profiler(enabled=v)),
        _nothing,
    ),
    Api(
        "Profiler",
        "trace_async_tasks",
        "bool",
        lambda: None,
        lambda _, v: Profiler(trace_async_tasks=v),
        _nothing,
    ),
    Api(
        "Profiler",
        "collect_stack_trace",
        "bool",
        lambda: None,
        lambda _, v: Profiler(collect_stack_trace=v),
        _nothing,
    ),
    Api(
        "Profiler",
        "max_traces",
        "int>0 small",
        lambda: None,
        lambda _, v: Profiler(max_traces=v),
        _nothing,
    ),
    Api(
        "Profiler",
        "stack_limit",
        "int>0",
        lambda: None,
        lambda _, v: Profiler(stack_limit=v),
        _nothing,
    ),
    Api("Profiler", "clock", "callable", lambda: None, lambda _, v: Profiler(clock=v), _nothing),
    Api(
        "Profiler",
        "sample_interval",
        "finite>0",
        lambda: None,
        lambda _, v: Profiler(sample_interval=v),
        _nothing,
    ),
    Api(
        "Profiler.enabled",
        "enabled",
        "bool",
        Profiler,
        lambda p, v: setattr(p, "enabled", v),
        _use_profiler,
    ),
    Api(
        "Profiler.trace_context",
        "name",
        "str",
        Profiler,
        lambda p, v: p.trace_context(v),
        _use_profiler,
    ),
    Api(
        "Profiler.start_trace",
        "name",
        "str",
        Profiler,
        lambda p, v: p.end_trace(p.start_trace(v)),
        _use_profiler,
    ),
    Api(
        "Profiler.trace", "name", "str|None", Profiler, lambda p, v: p.trace(name=v), _use_profiler
    ),
    Api(
        "Profiler.end_trace",
        "span",
        "callable",
        Profiler,
        lambda p, v: p.end_trace(v),
        _use_profiler,
    ),
    # readers and export
    Api(
        "PsutilReader", "pid", "pid|None", lambda: None, lambda _, v: PsutilReader(pid=v), _nothing
    ),
    Api(
        "MetricsServer",
        "port",
        "port",
        lambda: None,
        lambda _, v: MetricsServer([], port=v),
        _nothing,
    ),
]


def _seen(m: ResourceMonitor) -> ResourceMonitor:
    m.record_metric("x", 1.0)  # the hot path of a series already recorded
    return m


def _names(message: str, param: str) -> bool:
    return param in message


@settings(max_examples=600, deadline=None, database=None)
@given(api=st.sampled_from(APIS), value=st.sampled_from(VALUES))
def test_bad_values_are_refused_naming_the_argument(api: Api, value: object) -> None:
    obj = api.make()
    ok = KINDS[api.kind](value)
    if ok:
        api.call(obj, value)
    else:
        with pytest.raises(ConfigurationError) as info:
            api.call(obj, value)
        assert _names(str(info.value), api.param), (api, value, str(info.value))
    if obj is not None:
        api.use(obj)


def test_every_value_of_every_api_once() -> None:
    # The property test samples; this walks the whole table once, deterministically.
    inner = test_bad_values_are_refused_naming_the_argument.hypothesis.inner_test  # type: ignore[attr-defined]
    failures = []
    for api in APIS:
        for value in VALUES:
            try:
                inner(api, value)
            except BaseException as exc:  # collect them all, then report
                failures.append(f"{api.name}({api.param}={value!r}): {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
