"""System and application monitoring: thresholds, alerts, a profiler, Prometheus export.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``.

- ``_stats``: the :class:`SystemStats` snapshot and the raw :class:`Reading`;
- ``_reader``: :class:`PsutilReader`, the default source of readings;
- ``_monitor``: :class:`ResourceMonitor` (sampling windows, thresholds, alerts);
- ``_history``: the history ring buffer; ``_requests``: the request tracker;
- ``_alerts``: :class:`Threshold` and :class:`Alert`;
- ``_metrics``: counters, gauges and histograms; ``_sources``: ``stats()`` sources;
- ``_validate``: argument checks; ``_log``: the package logger (with a NullHandler);
- ``_profiler``: :class:`Profiler`;
- ``_prometheus``: collectors; ``_server``: the HTTP endpoint (both need the
  ``prometheus`` extra at run time, not at import);
- ``_otel``: OpenTelemetry export (needs the ``otel`` extra at run time);
- ``_sampler``: the profiler's sampling thread;
- ``_cli``: ``python -m mtaio.monitoring`` / ``mtaio-monitor``, a live terminal view.
"""

from importlib.metadata import version as _version

from mtaio.typing import publish_module as _publish_module

from ._alerts import Alert as Alert
from ._alerts import Threshold as Threshold
from ._errors import MissingDependencyError as MissingDependencyError
from ._errors import ProcessGoneError as ProcessGoneError
from ._history import HistorySummary as HistorySummary
from ._metrics import DEFAULT_BUCKETS as DEFAULT_BUCKETS
from ._metrics import Counter as Counter
from ._metrics import CounterChild as CounterChild
from ._metrics import ExceptionCounter as ExceptionCounter
from ._metrics import Gauge as Gauge
from ._metrics import GaugeChild as GaugeChild
from ._metrics import Histogram as Histogram
from ._metrics import HistogramChild as HistogramChild
from ._metrics import InProgress as InProgress
from ._metrics import MetricsRegistry as MetricsRegistry
from ._metrics import Timer as Timer
from ._monitor import ResourceMonitor as ResourceMonitor
from ._otel import OTelMetrics as OTelMetrics
from ._otel import export_spans as export_spans
from ._profiler import Profile as Profile
from ._profiler import Profiler as Profiler
from ._profiler import Sampling as Sampling
from ._profiler import Span as Span
from ._profiler import Trace as Trace
from ._profiler import TraceStats as TraceStats
from ._prometheus import MonitorCollector as MonitorCollector
from ._prometheus import RegistryCollector as RegistryCollector
from ._reader import PsutilReader as PsutilReader
from ._reader import StatsReader as StatsReader
from ._requests import TrackedRequest as TrackedRequest
from ._server import MetricsServer as MetricsServer
from ._server import serve_registry as serve_registry
from ._sources import StatsSource as StatsSource
from ._stats import METRIC_ALIASES as METRIC_ALIASES
from ._stats import SYSTEM_METRICS as SYSTEM_METRICS
from ._stats import CPUStats as CPUStats
from ._stats import IOStats as IOStats
from ._stats import MemoryStats as MemoryStats
from ._stats import MonitorStats as MonitorStats
from ._stats import ProcessStats as ProcessStats
from ._stats import Reading as Reading
from ._stats import SystemStats as SystemStats

__version__: str = _version("mtaio-monitoring")

__all__ = (
    "ResourceMonitor",
    "TrackedRequest",
    "HistorySummary",
    "MonitorStats",
    "SystemStats",
    "CPUStats",
    "MemoryStats",
    "IOStats",
    "ProcessStats",
    "SYSTEM_METRICS",
    "METRIC_ALIASES",
    "DEFAULT_BUCKETS",
    "Reading",
    "StatsReader",
    "PsutilReader",
    "Threshold",
    "Alert",
    "Counter",
    "Gauge",
    "Histogram",
    "CounterChild",
    "GaugeChild",
    "HistogramChild",
    "Timer",
    "InProgress",
    "ExceptionCounter",
    "MetricsRegistry",
    "StatsSource",
    "Profiler",
    "Sampling",
    "Profile",
    "Trace",
    "TraceStats",
    "Span",
    "MonitorCollector",
    "RegistryCollector",
    "MetricsServer",
    "serve_registry",
    "OTelMetrics",
    "export_spans",
    "MissingDependencyError",
    "ProcessGoneError",
)

# Reprs, tracebacks and pickles name the public path (mtaio.monitoring.X), not a private module.
_publish_module(globals())
