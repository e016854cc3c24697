"""OpenTelemetry export: a registry through the metrics API, profiles as spans.

The OpenTelemetry API is imported here only, and this module only when OpenTelemetry export
is asked for, so ``mtaio.monitoring`` imports without the ``otel`` extra. Only the API is
used: the application configures the SDK (providers, readers, exporters) as it likes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, final

from mtaio.exceptions import ConfigurationTypeError

from ._errors import MissingDependencyError
from ._metrics import Counter, Gauge, HistogramChild, MetricsRegistry
from ._profiler import Profile, Trace
from ._sources import RegisteredSource

_QUANTILES = (0.5, 0.95, 0.99)


def _import_otel() -> tuple[ModuleType, ModuleType]:
    try:
        # The extra may be absent where mypy runs (the types env installs no extras).
        from opentelemetry import metrics, trace  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise MissingDependencyError(
            "OpenTelemetry export needs opentelemetry-api; install it with "
            "pip install 'mtaio-monitoring[otel]'"
        ) from exc
    return metrics, trace


@final
class OTelMetrics:
    """Export a :class:`MetricsRegistry` through the OpenTelemetry metrics API.

    Each metric becomes an observable instrument read at every collection (nothing is added
    to the recording hot path): a counter an observable counter, a gauge an observable gauge,
    a histogram an observable counter ``<name>.count`` and ``<name>.sum`` and an observable
    gauge ``<name>.quantile`` (attribute ``quantile`` = 0.5, 0.95, 0.99 of the local
    reservoir); each field of a registered ``stats()`` source becomes ``<source>.<field>``.
    Labels become attributes. Metrics created later are exported after :meth:`sync`.

    Args:
        registry: The metrics to export (a monitor's ``registry``, or one of your own).
        meter_provider: Where to create instruments; the global provider by default.
        prefix: Prepended to every instrument name (``"app."``).

    Raises:
        MissingDependencyError: If opentelemetry-api is not installed.
    """

    def __init__(
        self, registry: MetricsRegistry, meter_provider: Any = None, *, prefix: str = ""
    ) -> None:
        if not isinstance(registry, MetricsRegistry):
            raise ConfigurationTypeError(f"registry must be a MetricsRegistry, got {registry!r}")
        if not isinstance(prefix, str):
            raise ConfigurationTypeError(f"prefix must be a string, got {prefix!r}")
        metrics, _ = _import_otel()
        self._metrics_api = metrics
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self._meter = provider.get_meter("mtaio.monitoring")
        self._registry = registry
        self._prefix = prefix
        self._bound: set[str] = set()
        self.sync()

    def sync(self) -> int:
        """Create instruments for metrics and sources added since the last call; return how many."""
        made = 0
        for metric in self._registry:
            if metric.name in self._bound:
                continue
            self._bound.add(metric.name)
            name, doc = self._prefix + metric.name, metric.description or metric.name
            if isinstance(metric, Counter):
                self._meter.create_observable_counter(
                    name, callbacks=[self._series(metric.name, "value")], description=doc
                )
            elif isinstance(metric, Gauge):
                self._meter.create_observable_gauge(
                    name, callbacks=[self._series(metric.name, "value")], description=doc
                )
            else:
                self._meter.create_observable_counter(
                    name + ".count", callbacks=[self._series(metric.name, "count")], description=doc
                )
                self._meter.create_observable_counter(
                    name + ".sum", callbacks=[self._series(metric.name, "sum")], description=doc
                )
                self._meter.create_observable_gauge(
                    name + ".quantile",
                    callbacks=[self._series(metric.name, "quantile")],
                    description=doc,
                )
            made += 1
        for source in self._registry.sources():
            for field, _, kind in source.read():
                key = f"{source.name}.{field}"
                if key in self._bound:
                    continue
                self._bound.add(key)
                create = (
                    self._meter.create_observable_counter
                    if kind == "counter"
                    else self._meter.create_observable_gauge
                )
                create(
                    self._prefix + key,
                    callbacks=[self._field(source, field)],
                    description=f"{source.name}.stats().{field}",
                )
                made += 1
        return made

    def _series(self, name: str, part: str) -> Callable[[Any], Iterator[Any]]:
        observation = self._metrics_api.Observation
        registry = self._registry

        def callback(options: Any) -> Iterator[Any]:
            metric = registry.get(name)
            if metric is None:
                return
            for labels, child in metric.series():
                if not isinstance(child, HistogramChild):
                    yield observation(child.get(), labels)
                elif part == "count":
                    yield observation(child.count, labels)
                elif part == "sum":
                    yield observation(child.sum, labels)
                else:
                    for q in _QUANTILES:
                        value = child.quantile(q)
                        if value == value:  # not NaN: an empty series has no quantiles
                            yield observation(value, {**labels, "quantile": str(q)})

        return callback

    def _field(self, source: RegisteredSource, field: str) -> Callable[[Any], Iterable[Any]]:
        observation = self._metrics_api.Observation

        def callback(options: Any) -> Iterable[Any]:
            return [observation(v) for n, v, _ in source.read() if n == field]

        return callback

    def __repr__(self) -> str:
        return f"<OTelMetrics {self._registry!r} instruments={len(self._bound)}>"


def export_spans(
    profile: Profile, tracer_provider: Any = None, *, wall_offset: float | None = None
) -> int:
    """Send a profile's traces to OpenTelemetry as spans, nested as they ran; return how many.

    Each :class:`Trace` becomes a span with its start and end, its parent's span as parent
    (a trace whose parent was not recorded is a root), the task name as the
    ``mtaio.task`` attribute and an error status when it raised.

    Args:
        profile: What :meth:`Profiler.get_profile` returned.
        tracer_provider: Where to create spans; the global provider by default.
        wall_offset: Seconds to add to the profiler's clock to get wall-clock time;
            ``time.time() - time.perf_counter()`` (right for the default clock) if None.

    Raises:
        MissingDependencyError: If opentelemetry-api is not installed.
    """
    if not isinstance(profile, Profile):
        raise ConfigurationTypeError(f"profile must be a Profile, got {profile!r}")
    _, trace = _import_otel()
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    tracer = provider.get_tracer("mtaio.monitoring")
    offset = time.time() - time.perf_counter() if wall_offset is None else float(wall_offset)
    spans: dict[int, Any] = {}
    for t in profile.traces:  # in order of start: a parent before its children
        parent = spans.get(t.parent_id) if t.parent_id is not None else None
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = tracer.start_span(
            t.name,
            context=context,
            start_time=_ns(t.start + offset),
            attributes=_attributes(t),
        )
        if t.error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, t.error))
        span.end(end_time=_ns(t.end + offset))
        spans[t.id] = span
    return len(spans)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _attributes(t: Trace) -> dict[str, Any]:
    out: dict[str, Any] = {"mtaio.trace_id": t.id}
    if t.task is not None:
        out["mtaio.task"] = t.task
    if t.error is not None:
        out["exception.type"] = t.error
    if t.memory_delta is not None:
        out["mtaio.memory_delta"] = t.memory_delta
    return out
