"""ResourceMonitor: timed, non-blocking sampling, history, thresholds, alerts, app metrics."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, final

from mtaio.exceptions import (
    ConfigurationError,
    require_callable,
    require_choice,
    require_positive,
    require_positive_int,
)
from mtaio.typing import Clock

from ._alerts import (
    ALERT_LEVELS,
    Alert,
    AlertHandler,
    Direction,
    Threshold,
    ThresholdHandler,
    deliver,
    logger,
)
from ._metrics import (
    DEFAULT_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    HistogramChild,
    MetricsRegistry,
    quantile,
    require_number,
)
from ._reader import PsutilReader, StatsReader
from ._stats import SYSTEM_METRICS, Reading, SystemStats, build_stats

if TYPE_CHECKING:
    from ._prometheus import MetricsServer, MonitorCollector

_H = TypeVar("_H", bound=Callable[..., Any])
_T = TypeVar("_T")

#: Histogram fed by the request tracker (seconds per request, labelled by request name).
REQUEST_LATENCY_METRIC = "request_latency_seconds"


@final
@dataclass(frozen=True, slots=True)
class HistorySummary:
    """Figures of one metric over a window of the history (NaN when the window is empty)."""

    metric: str
    count: int
    mean: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float
    last: float


@final
@dataclass(frozen=True, slots=True)
class MonitorStats:
    """A snapshot of a :class:`ResourceMonitor`'s own counters, from ``stats()``.

    Attributes:
        running: Whether the sampling timer is running.
        interval: Seconds between timer samples.
        samples: Samples added to the history (by the timer or a direct ``sample()``).
        sample_errors: Timer samples that failed (logged, and the timer kept going).
        history: Samples held in the history at the time of the snapshot.
        thresholds: Thresholds registered.
        thresholds_fired: Times a threshold fired.
        alerts_sent: Alerts sent (to the ``on_alert`` handlers, or logged when there is none).
        handler_errors: Handler calls (threshold and alert handlers) that raised.
        request_count: Requests that finished, tracked or recorded (errors included).
        error_count: Tracked requests that raised.
        cancelled_count: Tracked requests that were cancelled.
        in_flight: Tracked requests running at the time of the snapshot.
    """

    running: bool
    interval: float
    samples: int
    sample_errors: int
    history: int
    thresholds: int
    thresholds_fired: int
    alerts_sent: int
    handler_errors: int
    request_count: int
    error_count: int
    cancelled_count: int
    in_flight: int


@final
class TrackedRequest:
    """The context manager :meth:`ResourceMonitor.track_request` returns.

    Usable once, with ``async with`` or ``with``. A request that raises counts as an error;
    a cancelled one counts as neither a request nor an error (it did not finish).
    """

    __slots__ = ("_monitor", "_name", "_start", "latency")

    def __init__(self, monitor: ResourceMonitor, name: str | None) -> None:
        self._monitor = monitor
        self._name = name
        self._start = 0.0
        self.latency: float | None = None

    def __enter__(self) -> Self:
        self._monitor._in_flight += 1
        self._start = self._monitor._clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        monitor = self._monitor
        monitor._in_flight -= 1
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            monitor._cancelled_count += 1
            return
        self.latency = monitor._clock() - self._start
        monitor.record_request(self.latency, error=exc_type is not None, name=self._name)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class ResourceMonitor:
    """Watch the machine, the process and the application without blocking the event loop.

    A timer takes a sample every ``interval`` seconds: the reader (psutil by default) runs in
    a worker thread the monitor owns, the sample goes into a ring buffer of ``history_size``
    entries, and every threshold is evaluated against it. CPU and I/O rates are deltas between
    two timer samples; :meth:`get_current_stats` reads the machine afresh but never moves that
    baseline, so ad-hoc calls do not disturb the timer's figures.

    The monitor also holds application metrics (counters, gauges, histograms) and a request
    tracker whose totals appear in every :class:`SystemStats` as ``request_count``,
    ``error_count`` and ``latency_sum``.

    It is designed for subclassing (the seed guide's ``ApplicationMonitor``): internal state
    lives in underscore attributes, so a subclass may freely set ``self.metrics`` and the like.

    Args:
        interval: Seconds between two timer samples (> 0).
        history_size: Samples kept in the history ring buffer (>= 1).
        reader: Where readings come from; a :class:`PsutilReader` by default. A reader with
            ``blocking = False`` is called on the loop instead of in a thread.
        clock: Monotonic clock for cooldowns and request latencies; by default the running
            loop's clock (``time.monotonic`` outside a loop), so virtual-time tests see it.
        wall_clock: Wall clock stamped on snapshots (display only).
        alert_on_threshold: Also send an :class:`Alert` to the ``on_alert`` handlers when a
            threshold fires.

    Raises:
        ConfigurationError: If ``interval`` or ``history_size`` is not positive.

    Example:
        >>> async def main():
        ...     async with ResourceMonitor(interval=1.0) as monitor:
        ...         monitor.set_threshold("cpu.usage_percent", 90, sustained=3)
        ...         async with monitor.track_request():
        ...             ...
        ...         return (await monitor.get_current_stats()).request_count
    """

    def __init__(
        self,
        interval: float = 1.0,
        history_size: int = 3600,
        *,
        reader: StatsReader | None = None,
        clock: Clock | None = None,
        wall_clock: Clock = time.time,
        alert_on_threshold: bool = True,
    ) -> None:
        self._interval = float(require_positive("interval", interval))
        if math.isinf(self._interval):
            raise ConfigurationError(f"interval must be a finite positive number, got {interval}")
        self._history: deque[SystemStats] = deque(
            maxlen=require_positive_int("history_size", history_size)
        )
        if reader is not None and not callable(getattr(reader, "read", None)):
            raise ConfigurationError(f"reader must have a read() method, got {reader!r}")
        self._reader: StatsReader | None = reader
        self._clock: Clock = _loop_time if clock is None else require_callable("clock", clock)
        self._wall_clock = require_callable("wall_clock", wall_clock)
        self._alert_on_threshold = alert_on_threshold
        self._prev: Reading | None = None
        self._task: asyncio.Task[None] | None = None
        self._lifecycle = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._servers: list[MetricsServer] = []
        self._thresholds: dict[tuple[str, tuple[tuple[str, str], ...], str], Threshold] = {}
        self._exceeded_handlers: list[ThresholdHandler] = []
        self._cleared_handlers: list[ThresholdHandler] = []
        self._alert_handlers: list[AlertHandler] = []
        self._alerts: deque[Alert] = deque(maxlen=100)
        self._registry = MetricsRegistry()
        self._request_count = 0
        self._error_count = 0
        self._cancelled_count = 0
        self._latency_sum = 0.0
        self._in_flight = 0
        self._samples = 0
        self._sample_errors = 0
        self._alerts_sent = 0
        self._thresholds_fired = 0
        self._handler_errors = 0
        self._latency_hist: Histogram | None = None
        self._unlabelled: dict[str, HistogramChild] = {}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        """Seconds between two timer samples."""
        return self._interval

    @property
    def history_size(self) -> int:
        """Capacity of the history ring buffer."""
        maxlen = self._history.maxlen
        assert maxlen is not None
        return maxlen

    @property
    def running(self) -> bool:
        """Whether the sampling timer is running."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the sampling timer (idempotent).

        The baseline reading is taken here, so the first timer sample after ``interval``
        already has meaningful CPU and I/O rates.
        """
        async with self._lifecycle:  # two concurrent start() calls make one timer
            if self.running:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="mtaio-monitor")
            try:
                reading = await self._read()
            except BaseException:
                await self._shutdown_executor()
                raise
            if self._prev is None or reading.time >= self._prev.time:
                self._prev = reading
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"mtaio-monitor-{id(self):x}"
            )

    async def stop(self) -> None:
        """Stop the timer, close metric servers and the worker thread; nothing is left running.

        Safe to call twice, before :meth:`start`, from a cancelled task, and from a
        threshold or alert handler (the timer then ends once the handler returns).
        """
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                if task is not asyncio.current_task():  # a handler may stop its own monitor
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            servers, self._servers = self._servers, []
            for server in servers:
                await server.close()
            await self._shutdown_executor()

    close = stop

    async def _shutdown_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # The worker is idle unless a read was cut short by cancellation; joining it
            # is then at most one read (well under a millisecond).
            executor.shutdown(wait=True, cancel_futures=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self._interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                await self.sample()
            except Exception:
                self._sample_errors += 1
                logger.exception("monitor sample failed")
            next_at += self._interval
            now = loop.time()
            if next_at < now:  # we fell behind (a slow handler): skip, do not burst
                next_at = now + self._interval

    # -- sampling --------------------------------------------------------------------------

    async def _read(self) -> Reading:
        reader = self._reader
        if reader is None:
            # Built off the loop too (it reads the boot time). Real readings are timed on
            # the real clock, whatever clock the monitor uses.
            reader = self._reader = await self._off_loop(PsutilReader)
        if not getattr(reader, "blocking", True):
            return reader.read()
        return await self._off_loop(reader.read)

    async def _off_loop(self, fn: Callable[[], _T]) -> _T:
        if self._executor is not None:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        return await asyncio.to_thread(fn)

    def _build(self, reading: Reading, prev: Reading | None) -> SystemStats:
        return build_stats(
            reading,
            prev,
            timestamp=self._wall_clock(),
            request_count=self._request_count,
            error_count=self._error_count,
            latency_sum=self._latency_sum,
            in_flight=self._in_flight,
        )

    async def get_current_stats(self) -> SystemStats:
        """Read the system now and return its statistics, without touching the history.

        Rates and percentages are measured since the last timer sample (since boot before
        the first one); the timer's baseline is left as it was.
        """
        reading = await self._read()
        prev = self._prev
        if prev is not None and reading.time <= prev.time:
            prev = None
        return self._build(reading, prev)

    async def sample(self) -> SystemStats:
        """Take one timer sample now: read, record in the history, evaluate thresholds.

        The timer calls this every ``interval``; call it yourself to drive a monitor that is
        not started (tests, a cron-like loop).
        """
        reading = await self._read()
        prev = self._prev
        if prev is not None and reading.time <= prev.time:
            prev = None
        stats = self._build(reading, prev)
        self._prev = reading
        self._history.append(stats)
        self._samples += 1
        await self._check_thresholds(stats)
        return stats

    @property
    def latest(self) -> SystemStats | None:
        """The newest timer sample, or None before the first one."""
        return self._history[-1] if self._history else None

    # -- history ---------------------------------------------------------------------------

    def history(self, last: int | None = None) -> list[SystemStats]:
        """Return the samples in the history, oldest first (only the ``last`` N if given)."""
        if last is None:
            return list(self._history)
        require_positive_int("last", last)
        return list(self._history)[-last:]

    def values(self, metric: str, last: int | None = None) -> list[float]:
        """Return one metric's values over the history window, oldest first.

        Args:
            metric: A name from :data:`SYSTEM_METRICS`, e.g. ``"memory.percent"``.
            last: Only the newest N samples.

        Raises:
            ConfigurationError: If ``metric`` is not a system metric.
        """
        require_choice("metric", metric, SYSTEM_METRICS)
        return [s.flat()[metric] for s in self.history(last)]

    def summary(self, metric: str, last: int | None = None) -> HistorySummary:
        """Return count, mean, min, max, p50, p95, p99 and last of a metric over the window."""
        data = self.values(metric, last)
        ordered = sorted(data)
        if not data:
            nan = math.nan
            return HistorySummary(metric, 0, nan, nan, nan, nan, nan, nan, nan)
        return HistorySummary(
            metric,
            len(data),
            sum(data) / len(data),
            ordered[0],
            ordered[-1],
            quantile(ordered, 0.5),
            quantile(ordered, 0.95),
            quantile(ordered, 0.99),
            data[-1],
        )

    def percentile(self, metric: str, q: float, last: int | None = None) -> float:
        """Return the ``q`` quantile (0-1, so 0.95 is p95) of a metric over the window."""
        require_number("q", q)
        if not 0.0 <= q <= 1.0:
            raise ConfigurationError(f"q must be between 0 and 1, got {q!r}")
        return quantile(sorted(self.values(metric, last)), q)

    # -- thresholds and alerts -------------------------------------------------------------

    def set_threshold(
        self,
        metric: str,
        value: float,
        *,
        direction: Direction = "above",
        sustained: int = 1,
        hysteresis: float = 0.0,
        cooldown: float = 0.0,
        labels: Mapping[str, object] | None = None,
    ) -> Threshold:
        """Watch a metric at every sample; replaces a threshold on the same metric and direction.

        Args:
            metric: A system metric (:data:`SYSTEM_METRICS`, e.g. ``"cpu.usage_percent"``) or
                the name of an application metric (its current value; a histogram's last
                observation).
            value: The limit.
            direction: ``"above"`` (fire when the metric exceeds ``value``) or ``"below"``.
            sustained: Consecutive breaching samples needed to fire.
            hysteresis: How far back past ``value`` the metric must come to clear.
            cooldown: Minimum seconds between two firings.
            labels: For an application metric, which series to watch.

        Returns:
            The :class:`Threshold`, whose state (``active``, ``fired``) can be inspected.

        Raises:
            ConfigurationError: On an unknown direction, a non-positive ``sustained``, or a
                name under ``cpu.``/``memory.``/``io.``/``process.`` that is not a system
                metric (a typo would otherwise never fire).
            ConfigurationTypeError: If ``value`` is not a number.
        """
        name: object = metric  # checked at run time: it may come from config files
        if isinstance(name, str) and name.startswith(_SYSTEM_GROUPS) and name not in SYSTEM_METRICS:
            known = ", ".join(sorted(SYSTEM_METRICS))
            raise ConfigurationError(
                f"metric {metric!r} is not a system metric; known system metrics: {known}"
            )
        threshold = Threshold(
            metric,
            value,
            direction=direction,
            sustained=sustained,
            hysteresis=hysteresis,
            cooldown=cooldown,
            labels=labels,
        )
        self._thresholds[threshold.key] = threshold
        return threshold

    def remove_threshold(
        self,
        metric: str,
        *,
        direction: Direction | None = None,
        labels: Mapping[str, object] | None = None,
    ) -> int:
        """Remove the thresholds on ``metric`` (one direction, or both); return how many."""
        doomed = [
            key
            for key, t in self._thresholds.items()
            if t.metric == metric
            and (direction is None or t.direction == direction)
            and (labels is None or t.labels == {str(k): str(v) for k, v in labels.items()})
        ]
        for key in doomed:
            del self._thresholds[key]
        return len(doomed)

    @property
    def thresholds(self) -> list[Threshold]:
        """Every threshold set."""
        return list(self._thresholds.values())

    def on_threshold_exceeded(self, handler: _H) -> _H:
        """Register ``handler(metric, value, threshold)``, sync or async; usable as a decorator."""
        self._exceeded_handlers.append(require_callable("handler", handler))
        return handler

    def on_threshold_cleared(self, handler: _H) -> _H:
        """Register ``handler(metric, value, threshold)`` called when a fired threshold clears."""
        self._cleared_handlers.append(require_callable("handler", handler))
        return handler

    def on_alert(self, handler: _H) -> _H:
        """Register ``handler(alert)`` receiving every :class:`Alert`; usable as a decorator."""
        self._alert_handlers.append(require_callable("handler", handler))
        return handler

    def remove_handler(self, handler: Callable[..., Any]) -> bool:
        """Unregister ``handler`` from every list; return whether it was registered."""
        found = False
        for handlers in (self._exceeded_handlers, self._cleared_handlers, self._alert_handlers):
            while handler in handlers:
                handlers.remove(handler)
                found = True
        return found

    def _metric_value(self, threshold: Threshold, flat: dict[str, float]) -> float | None:
        if threshold.metric in flat:
            return flat[threshold.metric]
        return self._registry.value(threshold.metric, threshold.labels)

    async def _check_thresholds(self, stats: SystemStats) -> None:
        if not self._thresholds:
            return
        flat = stats.flat()
        now = self._clock()
        events: list[tuple[str, Threshold, float]] = []
        for threshold in list(self._thresholds.values()):
            value = self._metric_value(threshold, flat)
            if value is None or math.isnan(value):
                continue
            change = threshold.evaluate(value, now)
            if change is not None:
                events.append((change, threshold, value))
        for outcome, threshold, value in events:
            if outcome == "fire":
                self._thresholds_fired += 1
                self._handler_errors += await deliver(
                    self._exceeded_handlers, threshold.metric, value, threshold.value
                )
                if self._alert_on_threshold:
                    await self.alert(
                        f"{threshold.metric} is {value:.4g}, {threshold.direction} the "
                        f"threshold {threshold.value:.4g}",
                        metric=threshold.metric,
                        value=value,
                        threshold=threshold.value,
                    )
            else:
                self._handler_errors += await deliver(
                    self._cleared_handlers, threshold.metric, value, threshold.value
                )

    async def alert(
        self,
        message: str,
        level: str = "warning",
        *,
        metric: str | None = None,
        value: float | None = None,
        threshold: float | None = None,
        **details: Any,
    ) -> Alert:
        """Send an alert to every ``on_alert`` handler (logged when there is none).

        Handlers run one after another; one that raises is logged and the rest still run.

        Args:
            message: What happened.
            level: One of ``"debug"``, ``"info"``, ``"warning"``, ``"error"``, ``"critical"``.
            metric: The metric concerned, if any.
            value: Its value.
            threshold: The threshold it crossed.
            **details: Anything else, kept in :attr:`Alert.details`.

        Returns:
            The :class:`Alert` delivered.
        """
        if not isinstance(message, str):
            raise ConfigurationError(f"message must be a string, got {message!r}")
        require_choice("level", level, ALERT_LEVELS)
        item = Alert(message, level, self._wall_clock(), metric, value, threshold, dict(details))
        self._alerts.append(item)
        self._alerts_sent += 1
        if self._alert_handlers:
            self._handler_errors += await deliver(self._alert_handlers, item)
        else:
            logger.log(_LOG_LEVELS[level], "alert: %s", message)
        return item

    @property
    def recent_alerts(self) -> list[Alert]:
        """The last 100 alerts, oldest first."""
        return list(self._alerts)

    # -- application metrics ---------------------------------------------------------------

    @property
    def registry(self) -> MetricsRegistry:
        """The application metrics (counters, gauges, histograms) of this monitor."""
        return self._registry

    def counter(self, name: str, description: str = "") -> Counter:
        """Return the counter ``name``, created on first use."""
        return self._registry.counter(name, description)

    def gauge(self, name: str, description: str = "") -> Gauge:
        """Return the gauge ``name``, created on first use."""
        return self._registry.gauge(name, description)

    def histogram(
        self,
        name: str,
        description: str = "",
        *,
        buckets: Sequence[float] | None = DEFAULT_BUCKETS,
        reservoir: int = 1024,
    ) -> Histogram:
        """Return the histogram ``name``, created on first use (latency buckets by default)."""
        return self._registry.histogram(name, description, buckets=buckets, reservoir=reservoir)

    def record_metric(
        self, name: str, value: float, labels: Mapping[str, object] | None = None
    ) -> None:
        """Record one observation of an application metric.

        The metric is a histogram without buckets (exported to Prometheus as a summary):
        it keeps the last value (what thresholds see), count, sum, min, max and p50/p95/p99.
        Use :meth:`counter` or :meth:`gauge` for the other kinds.

        Raises:
            ConfigurationTypeError: If ``value`` is not a number.
            MonitoringError: If ``name`` is already a counter or gauge.
        """
        if labels is None:
            # Hot path: an unlabelled series seen before, and a plain finite-or-inf number.
            child = self._unlabelled.get(name)
            plain = type(value) is float or type(value) is int
            if child is not None and plain and value == value:  # value == value: not NaN
                child.observe(value)
                return
        metric = self._registry.get(name)
        if not isinstance(metric, Histogram):
            metric = self._registry.histogram(name, buckets=None)
        series = metric.labels(labels)
        series.observe(require_number("value", value))
        if labels is None:
            self._unlabelled[name] = series

    def record_metrics(
        self, values: Mapping[str, float], labels: Mapping[str, object] | None = None
    ) -> None:
        """Record several metrics at once (``{"queue_depth": 3, "cache_hit_ratio": 0.9}``)."""
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"values must be a mapping of name to number, got {values!r}")
        checked = [(n, require_number(f"values[{n!r}]", v)) for n, v in values.items()]
        for name, value in checked:
            self.record_metric(name, value, labels)

    # -- requests --------------------------------------------------------------------------

    def track_request(self, name: str | None = None) -> TrackedRequest:
        """Time a request: ``async with monitor.track_request("checkout"): ...``.

        It feeds ``request_count``, ``error_count`` (the body raised), ``latency_sum`` and
        ``in_flight`` of every :class:`SystemStats`, and the ``request_latency_seconds``
        histogram (labelled ``request=name`` when a name is given).
        """
        return TrackedRequest(self, name)

    def record_request(
        self, latency: float, *, error: bool = False, name: str | None = None
    ) -> None:
        """Count one finished request of ``latency`` seconds (what the tracker does on exit)."""
        latency = require_number("latency", latency)
        self._request_count += 1
        self._latency_sum += latency
        if error:
            self._error_count += 1
        hist = self._latency_hist
        if hist is None:
            hist = self._latency_hist = self._registry.histogram(
                REQUEST_LATENCY_METRIC, "Seconds per tracked request", buckets=DEFAULT_BUCKETS
            )
        hist.labels(None if name is None else {"request": name}).observe(latency)

    # -- export ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return everything as plain data: latest sample, requests, metrics, thresholds."""
        latest = self.latest
        return {
            "timestamp": self._wall_clock(),
            "system": None if latest is None else latest.to_dict(),
            "requests": {
                "count": self._request_count,
                "errors": self._error_count,
                "cancelled": self._cancelled_count,
                "latency_sum": self._latency_sum,
                "in_flight": self._in_flight,
            },
            "metrics": self._registry.snapshot(),
            "thresholds": [t.to_dict() for t in self._thresholds.values()],
            "alerts": [
                {"message": a.message, "level": a.level, "timestamp": a.timestamp}
                for a in self._alerts
            ],
        }

    def stats(self) -> MonitorStats:
        """Return a snapshot of the monitor's own counters (see :class:`MonitorStats`)."""
        return MonitorStats(
            running=self.running,
            interval=self._interval,
            samples=self._samples,
            sample_errors=self._sample_errors,
            history=len(self._history),
            thresholds=len(self._thresholds),
            thresholds_fired=self._thresholds_fired,
            alerts_sent=self._alerts_sent,
            handler_errors=self._handler_errors,
            request_count=self._request_count,
            error_count=self._error_count,
            cancelled_count=self._cancelled_count,
            in_flight=self._in_flight,
        )

    def prometheus_collector(self, namespace: str = "mtaio") -> MonitorCollector:
        """Return a prometheus_client collector of this monitor's figures.

        Register it on any registry: ``REGISTRY.register(monitor.prometheus_collector())``.

        Raises:
            MissingDependencyError: If prometheus_client is not installed
                (``pip install 'mtaio-monitoring[prometheus]'``).
        """
        from ._prometheus import MonitorCollector

        return MonitorCollector(self, namespace=namespace)

    async def serve_metrics(
        self, port: int = 0, host: str = "127.0.0.1", *, namespace: str = "mtaio"
    ) -> MetricsServer:
        """Serve the Prometheus exposition over HTTP on the event loop (no thread).

        The server closes with :meth:`stop`, or on its own ``close()``.

        Args:
            port: TCP port; 0 picks a free one (read it from ``server.port``).
            host: Address to bind; loopback by default.
            namespace: Prefix of the system metric names.

        Returns:
            The running :class:`MetricsServer`.

        Raises:
            MissingDependencyError: If prometheus_client is not installed.
        """
        from ._prometheus import MetricsServer

        server = MetricsServer(self, host=host, port=port, namespace=namespace)
        await server.start()
        self._servers.append(server)
        return server

    def _forget_server(self, server: MetricsServer) -> None:
        with contextlib.suppress(ValueError):
            self._servers.remove(server)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} interval={self._interval} running={self.running} "
            f"samples={self._samples} thresholds={len(self._thresholds)}>"
        )


_SYSTEM_GROUPS = ("cpu.", "memory.", "io.", "process.")


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


_LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
