"""Application metrics: counters, gauges and histograms with labels and local quantiles."""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, Generic, Literal, TypeVar, final

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    MonitoringError,
    require_positive_int,
)

LabelKey = tuple[tuple[str, str], ...]
MetricKind = Literal["counter", "gauge", "histogram"]

#: Bucket bounds (seconds) used by histograms made for latencies; the Prometheus defaults.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


def require_number(name: str, value: object) -> float:
    """Check that ``value`` is a finite-or-infinite real number (not a bool, not NaN).

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value`` as a float.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float.
        ConfigurationError: If ``value`` is NaN.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationTypeError(f"{name} must be a number (int or float), got {value!r}")
    if math.isnan(value):
        raise ConfigurationError(f"{name} must be a number, got nan")
    return float(value)


def require_name(arg: str, value: object) -> str:
    """Check that ``value`` is a non-empty string; the error names ``arg``."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{arg} must be a non-empty string, got {value!r}")
    return value


def label_key(labels: Mapping[str, object] | None) -> LabelKey:
    """Turn a labels mapping into the hashable, order-independent key of a series."""
    if not labels:
        return ()
    if not isinstance(labels, Mapping):
        raise ConfigurationTypeError(f"labels must be a mapping of str to str, got {labels!r}")
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def quantile(ordered: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0-1) of sorted values, interpolating linearly.

    Returns NaN for an empty sequence.
    """
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@final
class CounterChild:
    """One labelled series of a :class:`Counter`: a value that only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0) to the counter.

        Raises:
            ConfigurationError: If ``amount`` is negative.
        """
        if amount < 0:
            raise ConfigurationError(f"amount must be >= 0 for a counter, got {amount!r}")
        self.value += amount

    def get(self) -> float:
        """Return the current value."""
        return self.value


@final
class GaugeChild:
    """One labelled series of a :class:`Gauge`: a value that goes up and down."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        """Set the gauge to ``value``."""
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` to the gauge."""
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount`` from the gauge."""
        self.value -= amount

    def get(self) -> float:
        """Return the current value."""
        return self.value


@final
class HistogramChild:
    """One labelled series of a :class:`Histogram`.

    Keeps count, sum, min, max and the last value exactly, bucket counts when the histogram
    has buckets, and the latest ``reservoir`` observations for local quantiles.
    """

    __slots__ = ("_bounds", "buckets", "count", "last", "max", "min", "recent", "sum")

    def __init__(self, bounds: tuple[float, ...], reservoir: int) -> None:
        self._bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.last = math.nan
        self.recent: deque[float] = deque(maxlen=reservoir)

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.count += 1
        self.sum += value
        self.last = value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.recent.append(value)
        if self._bounds:
            self.buckets[bisect.bisect_left(self._bounds, value)] += 1

    def get(self) -> float:
        """Return the last observed value (NaN before the first one)."""
        return self.last

    def quantile(self, q: float) -> float:
        """Return the ``q`` quantile (0-1) of the recent observations (NaN when empty)."""
        if not 0.0 <= q <= 1.0:
            raise ConfigurationError(f"q must be between 0 and 1, got {q!r}")
        return quantile(sorted(self.recent), q)

    def summary(self) -> dict[str, float]:
        """Return count, sum, mean, min, max, last, p50, p95 and p99."""
        ordered = sorted(self.recent)
        empty = self.count == 0
        return {
            "count": float(self.count),
            "sum": self.sum,
            "mean": self.sum / self.count if self.count else math.nan,
            "min": math.nan if empty else self.min,
            "max": math.nan if empty else self.max,
            "last": self.last,
            "p50": quantile(ordered, 0.5),
            "p95": quantile(ordered, 0.95),
            "p99": quantile(ordered, 0.99),
        }

    def cumulative_buckets(self) -> list[tuple[float, int]]:
        """Return ``(upper bound, cumulative count)`` pairs, ending with ``+Inf``."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self._bounds, math.inf), self.buckets, strict=True):
            running += n
            out.append((bound, running))
        return out


_C = TypeVar("_C", CounterChild, GaugeChild, HistogramChild)


class _Metric(Generic[_C]):
    """A named metric with one child series per label set."""

    kind: ClassVar[MetricKind]
    __slots__ = ("_children", "description", "name")

    def __init__(self, name: str, description: str = "") -> None:
        self.name = require_name("name", name)
        self.description = description
        self._children: dict[LabelKey, _C] = {}

    def _new_child(self) -> _C:
        raise NotImplementedError

    def labels(self, labels: Mapping[str, object] | None = None, /, **kw: object) -> _C:
        """Return the series for these labels (created on first use); keep it for hot paths.

        Args:
            labels: The labels as a mapping.
            **kw: Or as keyword arguments (merged with ``labels``).
        """
        if labels is None and not kw:  # the common, unlabelled case: one dict lookup
            child = self._children.get(())
            if child is not None:
                return child
        key = label_key({**dict(label_key(labels)), **kw}) if kw else label_key(labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def series(self) -> Iterator[tuple[dict[str, str], _C]]:
        """Yield ``(labels, series)`` for every label set seen so far."""
        for key, child in self._children.copy().items():
            yield dict(key), child

    def get(self, labels: Mapping[str, object] | None = None) -> float:
        """Return the value of one series (for a histogram: its last observation).

        Raises:
            MonitoringError: If no series has these labels.
        """
        child = self._children.get(label_key(labels))
        if child is None:
            raise MonitoringError(f"metric {self.name!r} has no series with labels {labels!r}")
        return child.get()


@final
class Counter(_Metric[CounterChild]):
    """A value that only goes up: requests served, bytes sent."""

    kind = "counter"
    __slots__ = ()

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0, labels: Mapping[str, object] | None = None) -> None:
        """Add ``amount`` (>= 0) to the series with ``labels``."""
        self.labels(labels).inc(amount)


@final
class Gauge(_Metric[GaugeChild]):
    """A value that goes up and down: queue depth, open connections."""

    kind = "gauge"
    __slots__ = ()

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float, labels: Mapping[str, object] | None = None) -> None:
        """Set the series with ``labels`` to ``value``."""
        self.labels(labels).set(value)

    def inc(self, amount: float = 1.0, labels: Mapping[str, object] | None = None) -> None:
        """Add ``amount`` to the series with ``labels``."""
        self.labels(labels).inc(amount)

    def dec(self, amount: float = 1.0, labels: Mapping[str, object] | None = None) -> None:
        """Subtract ``amount`` from the series with ``labels``."""
        self.labels(labels).dec(amount)


@final
class Histogram(_Metric[HistogramChild]):
    """A distribution: latencies, payload sizes.

    Args:
        name: The metric name.
        description: Help text (shown by Prometheus).
        buckets: Upper bounds for bucket counts (exported as a Prometheus histogram), or
            None for no buckets (exported as a summary with p50/p95/p99).
        reservoir: How many recent observations per series the local quantiles use.
    """

    kind = "histogram"
    __slots__ = ("buckets", "reservoir")

    def __init__(
        self,
        name: str,
        description: str = "",
        *,
        buckets: Sequence[float] | None = None,
        reservoir: int = 1024,
    ) -> None:
        super().__init__(name, description)
        bounds = tuple(sorted(require_number("buckets", b) for b in buckets or ()))
        self.buckets: tuple[float, ...] = tuple(b for b in bounds if b != math.inf)
        self.reservoir = require_positive_int("reservoir", reservoir)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets, self.reservoir)

    def observe(self, value: float, labels: Mapping[str, object] | None = None) -> None:
        """Record one observation in the series with ``labels``."""
        self.labels(labels).observe(value)

    def quantile(self, q: float, labels: Mapping[str, object] | None = None) -> float:
        """Return the ``q`` quantile (0-1) of one series' recent observations."""
        return self.labels(labels).quantile(q)

    def summary(self, labels: Mapping[str, object] | None = None) -> dict[str, float]:
        """Return count, sum, mean, min, max, last, p50, p95 and p99 of one series."""
        return self.labels(labels).summary()


AnyMetric = Counter | Gauge | Histogram


@final
class MetricsRegistry:
    """The application metrics of one monitor, by name."""

    __slots__ = ("_metrics",)

    def __init__(self) -> None:
        self._metrics: dict[str, AnyMetric] = {}

    def _get(self, name: str, kind: MetricKind) -> AnyMetric | None:
        metric = self._metrics.get(name)
        if metric is not None and metric.kind != kind:
            raise MonitoringError(
                f"metric {name!r} is already a {metric.kind}, it cannot be used as a {kind}"
            )
        return metric

    def counter(self, name: str, description: str = "") -> Counter:
        """Return the counter ``name``, creating it on first use."""
        metric = self._get(name, "counter")
        if metric is None:
            metric = self._metrics[name] = Counter(name, description)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, description: str = "") -> Gauge:
        """Return the gauge ``name``, creating it on first use."""
        metric = self._get(name, "gauge")
        if metric is None:
            metric = self._metrics[name] = Gauge(name, description)
        assert isinstance(metric, Gauge)
        return metric

    def histogram(
        self,
        name: str,
        description: str = "",
        *,
        buckets: Sequence[float] | None = None,
        reservoir: int = 1024,
    ) -> Histogram:
        """Return the histogram ``name``, creating it on first use (see :class:`Histogram`)."""
        metric = self._get(name, "histogram")
        if metric is None:
            metric = self._metrics[name] = Histogram(
                name, description, buckets=buckets, reservoir=reservoir
            )
        assert isinstance(metric, Histogram)
        return metric

    def get(self, name: str) -> AnyMetric | None:
        """Return the metric ``name``, or None."""
        return self._metrics.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __iter__(self) -> Iterator[AnyMetric]:
        return iter(list(self._metrics.values()))

    def __len__(self) -> int:
        return len(self._metrics)

    def value(self, name: str, labels: Mapping[str, object] | None = None) -> float | None:
        """Return the current value of a series, or None if it does not exist yet."""
        metric = self._metrics.get(name)
        if metric is None:
            return None
        child = metric._children.get(label_key(labels))
        return None if child is None else child.get()

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Return every metric as plain data: kind, description and each series' values."""
        out: dict[str, dict[str, object]] = {}
        for metric in self:
            series: list[dict[str, object]] = []
            for labels, child in metric.series():
                if isinstance(child, HistogramChild):
                    series.append({"labels": labels, **child.summary()})
                else:
                    series.append({"labels": labels, "value": child.value})
            out[metric.name] = {
                "kind": metric.kind,
                "description": metric.description,
                "series": series,
            }
        return out
