"""System and application monitoring: thresholds, alerts, a profiler, Prometheus export.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``.

- ``_stats``: the :class:`SystemStats` snapshot and the raw :class:`Reading`;
- ``_reader``: :class:`PsutilReader`, the default source of readings;
- ``_monitor``: :class:`ResourceMonitor`, its history and request tracker;
- ``_alerts``: :class:`Threshold` and :class:`Alert`;
- ``_metrics``: counters, gauges and histograms;
- ``_profiler``: :class:`Profiler`;
- ``_prometheus``: the collector and HTTP endpoint (needs the ``prometheus`` extra);
- ``_cli``: ``python -m mtaio.monitoring``, a live terminal view.
"""

from importlib.metadata import version as _version

from mtaio.typing import publish_module as _publish_module

from ._alerts import Alert as Alert
from ._alerts import Threshold as Threshold
from ._errors import MissingDependencyError as MissingDependencyError
from ._metrics import Counter as Counter
from ._metrics import CounterChild as CounterChild
from ._metrics import Gauge as Gauge
from ._metrics import GaugeChild as GaugeChild
from ._metrics import Histogram as Histogram
from ._metrics import HistogramChild as HistogramChild
from ._metrics import MetricsRegistry as MetricsRegistry
from ._monitor import HistorySummary as HistorySummary
from ._monitor import MonitorStats as MonitorStats
from ._monitor import ResourceMonitor as ResourceMonitor
from ._monitor import TrackedRequest as TrackedRequest
from ._profiler import Profile as Profile
from ._profiler import Profiler as Profiler
from ._profiler import Span as Span
from ._profiler import Trace as Trace
from ._profiler import TraceStats as TraceStats
from ._prometheus import MetricsServer as MetricsServer
from ._prometheus import MonitorCollector as MonitorCollector
from ._reader import PsutilReader as PsutilReader
from ._reader import StatsReader as StatsReader
from ._stats import SYSTEM_METRICS as SYSTEM_METRICS
from ._stats import CPUStats as CPUStats
from ._stats import IOStats as IOStats
from ._stats import MemoryStats as MemoryStats
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
    "MetricsRegistry",
    "Profiler",
    "Profile",
    "Trace",
    "TraceStats",
    "Span",
    "MonitorCollector",
    "MetricsServer",
    "MissingDependencyError",
)

# Reprs, tracebacks and pickles name the public path (mtaio.monitoring.X), not a private module.
_publish_module(globals())
