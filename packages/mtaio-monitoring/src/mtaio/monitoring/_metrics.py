"""Application metrics: counters, gauges and histograms with labels and local quantiles.

The conveniences prometheus_client users reach for are here too: ``Histogram.time()``,
``Gauge.track_inprogress()``, ``Counter.count_exceptions()`` (each a context manager, sync
or async, and a decorator of sync or async functions) and ``Gauge.set_function()``.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar, Generic, Literal, ParamSpec, TypeVar, final

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    MonitoringError,
    require_callable,
    require_positive_int,
)
from mtaio.typing import Clock

from ._blocks import DecoratorBlock
from ._log import logger
from ._sources import RegisteredSource, StatsSource
from ._validate import require_finite, require_name, require_number, require_quantile

LabelKey = tuple[tuple[str, str], ...]
MetricKind = Literal["counter", "gauge", "histogram"]
_P = ParamSpec("_P")
_R = TypeVar("_R")
_INF = math.inf
_perf_counter = time.perf_counter  # a method named time() shadows the module in classes

#: The most observations a histogram series keeps for its local quantiles.
MAX_RESERVOIR = 10_000_000

#: Bucket bounds (seconds) used by histograms made for latencies; the Prometheus defaults.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


def label_key(labels: Mapping[str, object] | None) -> LabelKey:
    """Turn a labels mapping into the hashable, order-independent key of a series.

    Raises:
        ConfigurationTypeError: If ``labels`` is neither None nor a mapping.
    """
    if labels is None:
        return ()
    if not isinstance(labels, Mapping):
        raise ConfigurationTypeError(f"labels must be a mapping of str to str, got {labels!r}")
    if not labels:
        return ()
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


def _fmt(value: float) -> str:
    return f"{value:g}"


@final
class Timer(DecoratorBlock):
    """What :meth:`Histogram.time` returns: observes the seconds its block (or call) took.

    Attributes:
        duration: Seconds the last block took (None until one ended).
    """

    __slots__ = ("_child", "_clock", "_start", "duration")

    def __init__(self, child: HistogramChild, clock: Clock) -> None:
        self._child = child
        self._clock = clock
        self._start = 0.0
        self.duration: float | None = None

    def _fresh(self) -> Timer:
        return Timer(self._child, self._clock)

    def _enter(self) -> None:
        self._start = self._clock()

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        self.duration = max(0.0, self._clock() - self._start)
        self._child.observe(self.duration)


@final
class InProgress(DecoratorBlock):
    """What :meth:`Gauge.track_inprogress` returns: the gauge counts blocks running."""

    __slots__ = ("_child",)

    def __init__(self, child: GaugeChild) -> None:
        self._child = child

    def _fresh(self) -> InProgress:
        return self

    def _enter(self) -> None:
        self._child.inc()

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        self._child.dec()


@final
class ExceptionCounter(DecoratorBlock):
    """What :meth:`Counter.count_exceptions` returns: counts blocks that raised.

    The exception still propagates; it is only counted.
    """

    __slots__ = ("_child", "_types")

    def __init__(
        self, child: CounterChild, types: type[BaseException] | tuple[type[BaseException], ...]
    ) -> None:
        self._child = child
        self._types = types

    def _fresh(self) -> ExceptionCounter:
        return self

    def _enter(self) -> None:
        pass

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        if exc_type is not None and issubclass(exc_type, self._types):
            self._child.inc()


@final
class CounterChild:
    """One labelled series of a :class:`Counter`: a value that only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (a finite number >= 0) to the counter.

        Raises:
            ConfigurationTypeError: If ``amount`` is not a number.
            ConfigurationError: If ``amount`` is negative, NaN or infinite.
        """
        # The hot path: a plain finite number >= 0 costs two type checks and one comparison.
        cls = amount.__class__
        if (cls is float or cls is int) and 0 <= amount < _INF:
            self.value += amount
            return
        if require_finite("amount", amount) < 0:
            raise ConfigurationError(f"amount must be >= 0 for a counter, got {amount!r}")
        self.value += amount

    def get(self) -> float:
        """Return the current value."""
        return self.value

    def __repr__(self) -> str:
        return f"<CounterChild value={_fmt(self.value)}>"


def _finite(name: str, value: float) -> float:
    # A plain finite number passes with two type checks and one subtraction (inf - inf and
    # nan - nan are NaN, never 0); anything else gets the full check and its error.
    cls = value.__class__
    if (cls is float or cls is int) and value - value == 0:
        return value
    return require_finite(name, value)


@final
class GaugeChild:
    """One labelled series of a :class:`Gauge`: a value that goes up and down."""

    __slots__ = ("_fn", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self._fn: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        """Set the gauge to ``value`` (a finite number)."""
        self.value = _finite("value", value)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (a finite number) to the gauge."""
        self.value += _finite("amount", amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount`` (a finite number) from the gauge."""
        self.value -= _finite("amount", amount)

    def set_function(self, fn: Callable[[], float] | None) -> None:
        """Read the gauge's value from ``fn()`` whenever it is read (None: stop).

        A function that raises or returns something other than a number reads as NaN (and
        is logged), so one broken gauge never breaks a scrape.
        """
        self._fn = None if fn is None else require_callable("fn", fn)

    def get(self) -> float:
        """Return the current value (``fn()`` when :meth:`set_function` set one)."""
        fn = self._fn
        if fn is None:
            return self.value
        try:
            return require_number("set_function() result", fn())
        except Exception:
            logger.exception("gauge function %r failed", fn)
            return math.nan

    def track_inprogress(self) -> InProgress:
        """Return a context manager/decorator that adds 1 while its block runs."""
        return InProgress(self)

    def __repr__(self) -> str:
        if self._fn is not None:
            return f"<GaugeChild function={self._fn!r}>"
        return f"<GaugeChild value={_fmt(self.value)}>"


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
        """Record one observation (a finite number).

        Raises:
            ConfigurationTypeError: If ``value`` is not a number (a bool is refused).
            ConfigurationError: If ``value`` is NaN or infinite.
        """
        cls = value.__class__  # an attribute read: cheaper than calling type()
        if not ((cls is float or cls is int) and value - value == 0):
            value = require_finite("value", value)
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

    def time(self, *, clock: Clock = _perf_counter) -> Timer:
        """Return a context manager/decorator observing the seconds its block takes."""
        return Timer(self, require_callable("clock", clock))

    def get(self) -> float:
        """Return the last observed value (NaN before the first one)."""
        return self.last

    def quantile(self, q: float) -> float:
        """Return the ``q`` quantile (0-1) of the recent observations (NaN when empty).

        Raises:
            ConfigurationTypeError: If ``q`` is not a number.
            ConfigurationError: If ``q`` is outside [0, 1] or NaN.
        """
        return quantile(sorted(self.recent), require_quantile("q", q))

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

    def __repr__(self) -> str:
        return f"<HistogramChild count={self.count} sum={_fmt(self.sum)}>"


_C = TypeVar("_C", CounterChild, GaugeChild, HistogramChild)


class _Metric(Generic[_C]):
    """A named metric with one child series per label set."""

    kind: ClassVar[MetricKind]
    __slots__ = ("_children", "description", "name")

    def __init__(self, name: str, description: str = "") -> None:
        self.name = require_name("name", name)
        if not isinstance(description, str):
            raise ConfigurationTypeError(f"description must be a string, got {description!r}")
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, series={len(self._children)})"


@final
class Counter(_Metric[CounterChild]):
    """A value that only goes up: requests served, bytes sent."""

    kind = "counter"
    __slots__ = ()

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0, labels: Mapping[str, object] | None = None) -> None:
        """Add ``amount`` (a finite number >= 0) to the series with ``labels``."""
        self.labels(labels).inc(amount)

    def count_exceptions(
        self,
        exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        labels: Mapping[str, object] | None = None,
    ) -> ExceptionCounter:
        """Return a context manager/decorator adding 1 each time its block raises ``exception``.

        The exception is not swallowed. Works with ``with``, ``async with`` and as a
        decorator of sync and async functions.

        Raises:
            ConfigurationTypeError: If ``exception`` is not an exception type (or a tuple).
        """
        given: object = exception  # checked at run time: untyped callers pass anything
        types: tuple[object, ...] = given if isinstance(given, tuple) else (given,)
        if not types or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in types
        ):
            raise ConfigurationTypeError(
                f"exception must be an exception type or a tuple of them, got {exception!r}"
            )
        return ExceptionCounter(self.labels(labels), exception)


@final
class Gauge(_Metric[GaugeChild]):
    """A value that goes up and down: queue depth, open connections."""

    kind = "gauge"
    __slots__ = ()

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float, labels: Mapping[str, object] | None = None) -> None:
        """Set the series with ``labels`` to ``value`` (a finite number)."""
        self.labels(labels).set(value)

    def inc(self, amount: float = 1.0, labels: Mapping[str, object] | None = None) -> None:
        """Add ``amount`` to the series with ``labels``."""
        self.labels(labels).inc(amount)

    def dec(self, amount: float = 1.0, labels: Mapping[str, object] | None = None) -> None:
        """Subtract ``amount`` from the series with ``labels``."""
        self.labels(labels).dec(amount)

    def set_function(
        self, fn: Callable[[], float] | None, labels: Mapping[str, object] | None = None
    ) -> None:
        """Read the series' value from ``fn()`` at every read (see ``GaugeChild.set_function``)."""
        self.labels(labels).set_function(fn)

    def track_inprogress(self, labels: Mapping[str, object] | None = None) -> InProgress:
        """Return a context manager/decorator that adds 1 to the series while its block runs.

        Example:
            >>> busy = Gauge("jobs_running")
            >>> @busy.track_inprogress()
            ... async def job() -> None: ...
        """
        return self.labels(labels).track_inprogress()


@final
class Histogram(_Metric[HistogramChild]):
    """A distribution: latencies, payload sizes.

    Args:
        name: The metric name.
        description: Help text (shown by Prometheus).
        buckets: Upper bounds for bucket counts (exported as a Prometheus histogram), or
            None for no buckets (exported as a summary with p50/p95/p99).
        reservoir: How many recent observations per series the local quantiles use
            (at most 10,000,000).
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
        given: object = buckets  # checked at run time: untyped callers pass anything
        if given is not None and (isinstance(given, str) or not isinstance(given, Sequence)):
            raise ConfigurationTypeError(f"buckets must be a sequence of numbers, got {buckets!r}")
        bounds = tuple(sorted({require_number("buckets", b) for b in buckets or ()}))
        self.buckets: tuple[float, ...] = tuple(b for b in bounds if b != math.inf)
        self.reservoir = require_positive_int("reservoir", reservoir)
        if reservoir > MAX_RESERVOIR:
            raise ConfigurationError(
                f"reservoir must be at most {MAX_RESERVOIR:,} observations, got {reservoir!r}"
            )

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets, self.reservoir)

    def observe(self, value: float, labels: Mapping[str, object] | None = None) -> None:
        """Record one observation (a finite number) in the series with ``labels``."""
        self.labels(labels).observe(value)

    def quantile(self, q: float, labels: Mapping[str, object] | None = None) -> float:
        """Return the ``q`` quantile (0-1) of one series' recent observations."""
        return self.labels(labels).quantile(q)

    def summary(self, labels: Mapping[str, object] | None = None) -> dict[str, float]:
        """Return count, sum, mean, min, max, last, p50, p95 and p99 of one series."""
        return self.labels(labels).summary()

    def time(
        self, labels: Mapping[str, object] | None = None, *, clock: Clock = _perf_counter
    ) -> Timer:
        """Return a context manager/decorator that observes the seconds its block takes.

        Works with ``with``, ``async with`` and as a decorator of sync and async functions
        (each call timed on its own).

        Example:
            >>> latency = Histogram("db_seconds", buckets=DEFAULT_BUCKETS)
            >>> @latency.time()
            ... async def query() -> None: ...
        """
        return self.labels(labels).time(clock=clock)

    def __repr__(self) -> str:
        return (
            f"Histogram({self.name!r}, buckets={len(self.buckets)}, series={len(self._children)})"
        )


AnyMetric = Counter | Gauge | Histogram


@final
class MetricsRegistry:
    """Application metrics by name: what a monitor holds, and usable on its own.

    Export it without a monitor through :func:`mtaio.monitoring.serve_registry` or a
    :class:`mtaio.monitoring.RegistryCollector`.
    """

    __slots__ = ("_metrics", "_sources")

    def __init__(self) -> None:
        self._metrics: dict[str, AnyMetric] = {}
        self._sources: dict[str, RegisteredSource] = {}

    def register_stats(
        self, name: str, source: StatsSource, *, counters: Iterable[str] = ()
    ) -> None:
        """Export an object's ``stats()`` snapshot, field by field, as ``name.field``.

        Any object whose ``stats()`` returns a dataclass fits (an mtaio ``TTLCache``,
        ``RateLimiter``, ``CircuitBreaker``, ``TaskExecutor``...; no import of those
        packages). Each read calls ``stats()`` afresh. Fields are gauges unless named in
        ``counters`` (values that only go up, exported as Prometheus counters). Thresholds
        can watch a field too: ``monitor.set_threshold("cache.hit_rate", 0.5,
        direction="below")``.

        Args:
            name: The prefix of the exported names (``"cache"`` gives ``cache_hits``).
            source: The object.
            counters: Fields that are cumulative counts.

        Raises:
            ConfigurationTypeError: If ``source`` has no ``stats()`` returning a dataclass,
                or ``counters`` names a field the snapshot does not have.
            MonitoringError: If ``name`` is already registered.
        """
        entry = RegisteredSource(name, source, counters)
        if name in self._sources:
            raise MonitoringError(f"a stats source named {name!r} is already registered")
        self._sources[name] = entry

    def unregister_stats(self, name: str) -> bool:
        """Stop exporting the source ``name``; return whether it was registered."""
        return self._sources.pop(name, None) is not None

    def sources(self) -> list[RegisteredSource]:
        """The registered stats sources."""
        return list(self._sources.values())

    def _get(self, name: str, kind: MetricKind) -> AnyMetric | None:
        metric = self._metrics.get(require_name("name", name))
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
        """Return the current value of a series, or None if it does not exist yet.

        ``"source.field"`` reads a field of a registered stats source.
        """
        metric = self._metrics.get(name)
        if metric is None:
            prefix, _, field = name.partition(".")
            source = self._sources.get(prefix)
            if source is None or labels:
                return None
            return next((v for n, v, _ in source.read() if n == field), None)
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
                    series.append({"labels": labels, "value": child.get()})
            out[metric.name] = {
                "kind": metric.kind,
                "description": metric.description,
                "series": series,
            }
        return out

    def __repr__(self) -> str:
        return f"<MetricsRegistry metrics={len(self._metrics)} sources={len(self._sources)}>"
