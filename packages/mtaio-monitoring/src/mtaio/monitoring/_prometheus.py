"""Prometheus exposition: a collector and an HTTP endpoint on the event loop.

prometheus_client is imported here only, and this module only when Prometheus export is
asked for, so ``mtaio.monitoring`` imports without the ``prometheus`` extra.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Protocol, cast, final

from mtaio.exceptions import ConfigurationTypeError

from ._errors import MissingDependencyError
from ._log import logger
from ._metrics import (
    Counter,
    CounterChild,
    Gauge,
    GaugeChild,
    Histogram,
    HistogramChild,
    MetricsRegistry,
)
from ._stats import SystemStats


class MonitorLike(Protocol):
    """What :class:`MonitorCollector` reads: a newest sample and a registry."""

    @property
    def latest(self) -> SystemStats | None:
        """The newest sample, or None."""
        ...

    @property
    def registry(self) -> MetricsRegistry:
        """The application metrics."""
        ...


def _import_prometheus() -> ModuleType:
    try:
        # The extra may be absent where mypy runs (the types env installs no extras).
        import prometheus_client  # type: ignore[import-not-found, unused-ignore]
        import prometheus_client.core  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise MissingDependencyError(
            "Prometheus export needs prometheus_client; install it with "
            "pip install 'mtaio-monitoring[prometheus]'"
        ) from exc
    module: ModuleType = prometheus_client  # typed even where the extra is absent (Any)
    return module


_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(name: str) -> str:
    """Turn a metric name into a valid Prometheus one (``api.latency-ms`` -> ``api_latency_ms``)."""
    out = _INVALID.sub("_", name)
    return "_" + out if out[:1].isdigit() else out


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str):
        raise ConfigurationTypeError(f"namespace must be a string, got {namespace!r}")
    return metric_name(namespace) + "_" if namespace else ""


@final
class RegistryCollector:
    """A prometheus_client collector of a :class:`MetricsRegistry` alone (no monitor).

    Counters, gauges and histograms (a summary when bucketless) are read live at every
    scrape, and every registered ``stats()`` source field by field.

    Args:
        registry: The metrics to expose.

    Raises:
        MissingDependencyError: If prometheus_client is not installed.
    """

    def __init__(self, registry: MetricsRegistry) -> None:
        if not isinstance(registry, MetricsRegistry):
            raise ConfigurationTypeError(f"registry must be a MetricsRegistry, got {registry!r}")
        self._pc = _import_prometheus()
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (called by prometheus_client on every scrape)."""
        return application_families(self._pc.core, self._registry)

    def __repr__(self) -> str:
        return f"<RegistryCollector {self._registry!r}>"


@final
class MonitorCollector:
    """A prometheus_client collector of a monitor's system and application metrics.

    System figures come from the monitor's newest sample (nothing is read from the OS at
    scrape time, so a scrape from another thread never races the loop); application metrics
    are read live.

    Args:
        monitor: The monitor to expose (anything with ``latest`` and ``registry``).
        namespace: Prefix of the system metric names (``mtaio_cpu_usage_percent``).
    """

    def __init__(self, monitor: MonitorLike, namespace: str = "mtaio") -> None:
        self._ns = _check_namespace(namespace)
        self._pc = _import_prometheus()
        self._monitor = monitor

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (called by prometheus_client on every scrape)."""
        stats = self._monitor.latest
        if stats is not None:
            yield from self._system(stats)
        yield from application_families(self._pc.core, self._monitor.registry)

    def __repr__(self) -> str:
        return f"<MonitorCollector {self._monitor!r}>"

    def _system(self, s: SystemStats) -> Iterator[Any]:
        core = self._pc.core
        ns = self._ns

        def gauge(name: str, doc: str, value: float) -> Any:
            return core.GaugeMetricFamily(ns + name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> Any:
            return core.CounterMetricFamily(ns + name, doc, value=value)

        yield gauge("cpu_usage_percent", "Machine CPU use (0-100)", s.cpu.usage_percent)
        load = core.GaugeMetricFamily(ns + "load_average", "Load average", labels=["period"])
        for period, value in zip(("1m", "5m", "15m"), s.cpu.load_average, strict=True):
            load.add_metric([period], value)
        yield load
        yield gauge("memory_total_bytes", "Physical memory", s.memory.total)
        yield gauge("memory_available_bytes", "Available memory", s.memory.available)
        yield gauge("memory_used_bytes", "Used memory", s.memory.used)
        yield gauge("memory_percent", "Used memory (0-100)", s.memory.percent)
        yield counter("io_read_bytes", "Bytes read from disks", s.io.read_bytes)
        yield counter("io_write_bytes", "Bytes written to disks", s.io.write_bytes)
        yield counter("io_reads", "Disk read operations", s.io.read_count)
        yield counter("io_writes", "Disk write operations", s.io.write_count)
        yield gauge("uptime_seconds", "Seconds since boot", s.uptime)
        p = s.process
        yield gauge("process_cpu_percent", "Process CPU use (100 = one core)", p.cpu_percent)
        yield gauge("process_resident_memory_bytes", "Process resident memory", p.memory_rss)
        yield gauge("process_virtual_memory_bytes", "Process virtual memory", p.memory_vms)
        yield gauge("process_threads", "Threads in the process", p.thread_count)
        yield gauge("process_open_fds", "Open file descriptors", p.open_fds)
        yield gauge("process_uptime_seconds", "Seconds since the process started", p.uptime)
        yield counter("requests", "Finished tracked requests", s.request_count)
        yield counter("request_errors", "Tracked requests that raised", s.error_count)
        yield counter("request_latency_seconds", "Seconds in tracked requests", s.latency_sum)
        yield gauge("requests_in_flight", "Tracked requests in progress", s.in_flight)


def application_families(core: Any, registry: MetricsRegistry) -> Iterator[Any]:
    """Yield the prometheus_client families of a registry's metrics and stats sources."""
    for metric in registry:
        name = metric_name(metric.name)
        series = list(metric.series())
        label_names = sorted({k for labels, _ in series for k in labels})
        doc = metric.description or metric.name
        family: Any
        if isinstance(metric, Counter):
            family = core.CounterMetricFamily(name, doc, labels=label_names)
        elif isinstance(metric, Gauge):
            family = core.GaugeMetricFamily(name, doc, labels=label_names)
        elif metric.buckets:
            family = core.HistogramMetricFamily(name, doc, labels=label_names)
        else:
            family = core.SummaryMetricFamily(name, doc, labels=label_names)
        for labels, child in series:
            values = [labels.get(k, "") for k in label_names]
            if not isinstance(child, HistogramChild):
                family.add_metric(values, cast("CounterChild | GaugeChild", child).get())
            elif isinstance(metric, Histogram) and metric.buckets:
                buckets = [
                    ("+Inf" if math.isinf(b) else repr(float(b)), n)
                    for b, n in child.cumulative_buckets()
                ]
                family.add_metric(values, buckets, child.sum)
            else:
                family.add_metric(values, child.count, child.sum)
                base = dict(zip(label_names, values, strict=True))
                for q in (0.5, 0.95, 0.99):
                    v = child.quantile(q)
                    if not math.isnan(v):
                        family.add_sample(name, {**base, "quantile": str(q)}, v)
        yield family
    for source in registry.sources():
        try:
            fields = source.read()
        except Exception:  # one broken source must not break the scrape
            logger.exception("stats source %r failed", source.name)
            continue
        for field, value, kind in fields:
            full = metric_name(f"{source.name}_{field}")
            doc = f"{source.name}.stats().{field}"
            if kind == "counter":
                yield core.CounterMetricFamily(full, doc, value=value)
            else:
                yield core.GaugeMetricFamily(full, doc, value=value)
