"""ResourceMonitor: timed, non-blocking sampling, thresholds, alerts and app metrics.

The history lives in ``_history``, the request tracker in ``_requests``, Prometheus export
in ``_prometheus``/``_server`` (which know nothing of this module).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    require_callable,
    require_choice,
    require_positive,
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
)
from ._history import History, HistorySummary
from ._log import logger
from ._metrics import (
    DEFAULT_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    HistogramChild,
    MetricsRegistry,
    label_key,
)
from ._reader import PsutilReader, StatsReader
from ._requests import RequestCounts, TrackedRequest
from ._stats import (
    SYSTEM_METRICS,
    MonitorStats,
    Reading,
    SystemStats,
    build_stats,
    resolve_metric,
)
from ._validate import (
    require_bool,
    require_finite,
    require_finite_non_negative,
    require_name,
    require_number,
)

if TYPE_CHECKING:
    from ._prometheus import MonitorCollector
    from ._server import MetricsServer

_H = TypeVar("_H", bound=Callable[..., Any])
_T = TypeVar("_T")

#: Samples after which a threshold on an application metric never recorded is reported.
UNRECORDED_AFTER = 3


class ResourceMonitor:
    """Watch the machine, the process and the application without blocking the event loop.

    A timer takes a sample every ``interval`` seconds: the reader (psutil by default) runs in
    a worker thread the monitor owns, the sample goes into a ring buffer of ``history_size``
    entries, and every threshold is evaluated against it.

    CPU and I/O figures are rates over a window, and a window of a few milliseconds is noise
    (CPU time is counted in 10 ms ticks). Every figure is therefore measured since a reading
    at least ``min_window`` seconds old: in practice the last complete sampling interval, plus
    the time since the last sample for :meth:`get_current_stats`. When no reading is that old
    yet (a call right after :meth:`start`), the rates of the newest sample are carried over,
    and before any sample the averages since boot are given.

    The monitor also holds application metrics (counters, gauges, histograms, registered
    ``stats()`` sources) and a request tracker whose totals appear in every
    :class:`SystemStats` as ``request_count``, ``error_count`` and ``latency_sum``.

    It is designed for subclassing (the seed guide's ``ApplicationMonitor``): internal state
    lives in underscore attributes, so a subclass may freely set ``self.metrics`` and the like.

    Args:
        interval: Seconds between two timer samples (finite, > 0).
        history_size: Samples kept in the history ring buffer (1 to 10,000,000).
        reader: Where readings come from; a :class:`PsutilReader` by default. A reader with
            ``blocking = False`` is called on the loop instead of in a thread.
        clock: Monotonic clock for cooldowns and request latencies; by default the running
            loop's clock (``time.monotonic`` outside a loop), so virtual-time tests see it.
        wall_clock: Wall clock stamped on snapshots (display only).
        alert_on_threshold: Also send an :class:`Alert` to the ``on_alert`` handlers when a
            threshold fires.
        min_window: The shortest window (seconds, on the reader's clock) CPU and I/O rates are
            measured over.

    Raises:
        ConfigurationError: If ``interval`` or ``history_size`` is out of range.

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
        min_window: float = 0.1,
    ) -> None:
        self._interval = float(require_positive("interval", interval))
        if math.isinf(self._interval):
            raise ConfigurationError(f"interval must be a finite positive number, got {interval}")
        self._history = History(history_size)
        if reader is not None and not callable(getattr(reader, "read", None)):
            raise ConfigurationTypeError(f"reader must have a read() method, got {reader!r}")
        self._reader: StatsReader | None = reader
        self._clock: Clock = _loop_time if clock is None else require_callable("clock", clock)
        self._wall_clock = require_callable("wall_clock", wall_clock)
        self._alert_on_threshold = require_bool("alert_on_threshold", alert_on_threshold)
        self._min_window = require_finite_non_negative("min_window", min_window)
        # Readings at least min_window apart, the newest last: the baselines of every rate.
        self._marks: deque[Reading] = deque(maxlen=2)
        self._task: asyncio.Task[None] | None = None
        self._lifecycle = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._servers: list[MetricsServer] = []
        self._scrape_stats: SystemStats | None = None
        self._thresholds: dict[tuple[str, tuple[tuple[str, str], ...], str], Threshold] = {}
        self._exceeded_handlers: list[ThresholdHandler] = []
        self._cleared_handlers: list[ThresholdHandler] = []
        self._alert_handlers: list[AlertHandler] = []
        self._alerts: deque[Alert] = deque(maxlen=100)
        self._registry = MetricsRegistry()
        self._requests = RequestCounts(self._registry, self._clock)
        self._samples = 0
        self._sample_errors = 0
        self._alerts_sent = 0
        self._thresholds_fired = 0
        self._handler_errors = 0
        self._unlabelled: dict[str, HistogramChild] = {}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        """Seconds between two timer samples."""
        return self._interval

    @property
    def history_size(self) -> int:
        """Capacity of the history ring buffer."""
        return self._history.size

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
            self._mark(reading)
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

    def _mark(self, reading: Reading) -> None:
        marks = self._marks
        if marks and reading.time < marks[-1].time:  # another clock: start afresh
            marks.clear()
        if not marks or reading.time - marks[-1].time >= self._min_window:
            marks.append(reading)

    def _baseline(self, reading: Reading) -> Reading | None:
        for mark in reversed(self._marks):
            span = reading.time - mark.time
            if span > 0 and span >= self._min_window:
                return mark
        return None

    def _build(self, reading: Reading) -> SystemStats:
        base = self._baseline(reading)
        req = self._requests
        stats = build_stats(
            reading,
            base,
            timestamp=self._wall_clock(),
            request_count=req.request_count,
            error_count=req.error_count,
            latency_sum=req.latency_sum,
            in_flight=req.in_flight,
        )
        latest = self._history.latest
        if base is None and latest is not None and self._marks:
            # Too soon after the newest reading to measure anything: the last complete
            # window's rates are the honest figures.
            stats = dataclasses.replace(
                stats,
                cpu=dataclasses.replace(stats.cpu, usage_percent=latest.cpu.usage_percent),
                io=dataclasses.replace(
                    stats.io,
                    read_bytes_per_sec=latest.io.read_bytes_per_sec,
                    write_bytes_per_sec=latest.io.write_bytes_per_sec,
                ),
                process=dataclasses.replace(stats.process, cpu_percent=latest.process.cpu_percent),
            )
        return stats

    async def get_current_stats(self) -> SystemStats:
        """Read the system now and return its statistics, without touching the history.

        Rates and percentages cover at least ``min_window`` seconds: the time since the
        newest reading that old (the last complete sampling interval and the time since), or
        the newest sample's rates when there is none, or averages since boot before any.
        """
        return self._build(await self._read())

    async def sample(self) -> SystemStats:
        """Take one timer sample now: read, record in the history, evaluate thresholds.

        The timer calls this every ``interval``; call it yourself to drive a monitor that is
        not started (tests, a cron-like loop).
        """
        reading = await self._read()
        stats = self._build(reading)
        self._mark(reading)
        self._history.append(stats)
        self._samples += 1
        await self._check_thresholds(stats)
        return stats

    @property
    def latest(self) -> SystemStats | None:
        """The newest timer sample, or None before the first one."""
        return self._history.latest

    # -- history ---------------------------------------------------------------------------

    def history(self, last: int | None = None) -> list[SystemStats]:
        """Return the samples in the history, oldest first (only the ``last`` N if given)."""
        return self._history.window(last)

    def values(self, metric: str, last: int | None = None) -> list[float]:
        """Return one metric's values over the history window, oldest first.

        Args:
            metric: A name from :data:`SYSTEM_METRICS`, e.g. ``"memory.percent"`` (or an
                alias, ``"cpu_usage"``/``"memory_usage"``).
            last: Only the newest N samples.

        Raises:
            ConfigurationError: If ``metric`` is not a system metric.
        """
        return self._history.values(metric, last)

    def summary(self, metric: str, last: int | None = None) -> HistorySummary:
        """Return count, mean, min, max, p50, p95, p99 and last of a metric over the window."""
        return self._history.summary(metric, last)

    def percentile(self, metric: str, q: float, last: int | None = None) -> float:
        """Return the ``q`` quantile (0-1, so 0.95 is p95) of a metric over the window."""
        return self._history.percentile(metric, q, last)

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
            metric: A system metric (:data:`SYSTEM_METRICS`, e.g. ``"cpu.usage_percent"``;
                ``"cpu_usage"`` and ``"memory_usage"`` are aliases of ``"cpu.usage_percent"``
                and ``"memory.percent"``), the name of an application metric (its current
                value; a histogram's last observation) or ``"source.field"`` of a registered
                stats source. A threshold on an application metric that is still not
                recorded after 3 samples is logged as a warning and listed in
                :attr:`MonitorStats.unrecorded_thresholds`.
            value: The limit (a finite number).
            direction: ``"above"`` (fire when the metric exceeds ``value``) or ``"below"``.
            sustained: Consecutive breaching samples needed to fire.
            hysteresis: How far back past ``value`` the metric must come to clear.
            cooldown: Minimum seconds between two firings.
            labels: For an application metric, which series to watch.

        Returns:
            The :class:`Threshold` (its ``metric`` is the resolved name), whose state
            (``active``, ``fired``) can be inspected.

        Raises:
            ConfigurationError: On an unknown direction, a non-positive ``sustained``, a
                non-finite ``value``, or a name under ``cpu.``/``memory.``/``io.``/
                ``process.`` that is not a system metric.
            ConfigurationTypeError: If ``value`` is not a number or ``metric`` not a string.
        """
        name = resolve_metric(require_name("metric", metric))
        if name.startswith(_SYSTEM_GROUPS) and name not in SYSTEM_METRICS:
            known = ", ".join(sorted(SYSTEM_METRICS))
            raise ConfigurationError(
                f"metric {metric!r} is not a system metric; known system metrics: {known}"
            )
        threshold = Threshold(
            name,
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
        name = resolve_metric(require_name("metric", metric))
        if direction is not None:
            require_choice("direction", direction, ("above", "below"))
        key = None if labels is None else label_key(labels)
        doomed = [
            k
            for k, t in self._thresholds.items()
            if t.metric == name
            and (direction is None or t.direction == direction)
            and (key is None or t.label_key == key)
        ]
        for k in doomed:
            del self._thresholds[k]
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

    def _unrecorded(self) -> list[Threshold]:
        return [t for t in self._thresholds.values() if not t.seen and t.missed >= UNRECORDED_AFTER]

    async def _check_thresholds(self, stats: SystemStats) -> None:
        if not self._thresholds:
            return
        flat = stats.flat()
        now = self._clock()
        events: list[tuple[str, Threshold, float]] = []
        for threshold in list(self._thresholds.values()):
            value = self._metric_value(threshold, flat)
            if value is None or math.isnan(value):
                threshold.missed += 1
                if threshold.missed == UNRECORDED_AFTER and not threshold.seen:
                    known = ", ".join(sorted(m.name for m in self._registry)) or "none"
                    logger.warning(
                        "threshold on %r: no application metric of that name (labels %r) "
                        "was recorded in %d samples, so it cannot fire; a typo? recorded "
                        "metrics: %s",
                        threshold.metric,
                        threshold.labels,
                        UNRECORDED_AFTER,
                        known,
                    )
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
            raise ConfigurationTypeError(f"message must be a string, got {message!r}")
        require_choice("level", level, ALERT_LEVELS)
        if metric is not None:
            require_name("metric", metric)
        if value is not None:
            require_number("value", value)
        if threshold is not None:
            require_finite("threshold", threshold)
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
            ConfigurationError: If ``value`` is NaN or infinite.
            MonitoringError: If ``name`` is already a counter or gauge.
        """
        if labels is None:
            # Hot path: an unlabelled series seen before (observe() checks the value).
            child = self._unlabelled.get(name)
            if child is not None:
                child.observe(value)
                return
        require_finite("value", value)
        metric = self._registry.get(name)
        if not isinstance(metric, Histogram):
            metric = self._registry.histogram(name, buckets=None)
        series = metric.labels(labels)
        series.observe(value)
        if labels is None:
            self._unlabelled[name] = series

    def record_metrics(
        self, values: Mapping[str, float], labels: Mapping[str, object] | None = None
    ) -> None:
        """Record several metrics at once (``{"queue_depth": 3, "cache_hit_ratio": 0.9}``).

        Every value is checked before any is recorded.
        """
        if not isinstance(values, Mapping):
            raise ConfigurationTypeError(
                f"values must be a mapping of name to number, got {values!r}"
            )
        checked = [
            (require_name("values key", n), require_finite(f"values[{n!r}]", v))
            for n, v in values.items()
        ]
        label_key(labels)
        for name, value in checked:
            self.record_metric(name, value, labels)

    def register_stats(self, name: str, source: Any, *, counters: Sequence[str] = ()) -> None:
        """Export an object's ``stats()`` fields (see :meth:`MetricsRegistry.register_stats`)."""
        self._registry.register_stats(name, source, counters=counters)

    # -- requests --------------------------------------------------------------------------

    def track_request(self, name: str | None = None) -> TrackedRequest:
        """Time a request: ``async with monitor.track_request("checkout"): ...``.

        It feeds ``request_count``, ``error_count`` (the body raised), ``latency_sum`` and
        ``in_flight`` of every :class:`SystemStats`, and the ``request_latency_seconds``
        histogram (labelled ``request=name`` when a name is given).
        """
        if name is not None:
            require_name("name", name)
        return TrackedRequest(self._requests, name)

    def record_request(
        self, latency: float, *, error: bool = False, name: str | None = None
    ) -> None:
        """Count one finished request of ``latency`` seconds (what the tracker does on exit)."""
        self._requests.record(latency, error=error, name=name)

    # -- export ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return everything as plain data: latest sample, requests, metrics, thresholds."""
        latest = self.latest
        req = self._requests
        return {
            "timestamp": self._wall_clock(),
            "system": None if latest is None else latest.to_dict(),
            "requests": {
                "count": req.request_count,
                "errors": req.error_count,
                "cancelled": req.cancelled_count,
                "latency_sum": req.latency_sum,
                "in_flight": req.in_flight,
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
        req = self._requests
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
            request_count=req.request_count,
            error_count=req.error_count,
            cancelled_count=req.cancelled_count,
            in_flight=req.in_flight,
            unrecorded_thresholds=tuple(t.metric for t in self._unrecorded()),
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
        from ._prometheus import MonitorCollector
        from ._server import MetricsServer

        server = MetricsServer(
            [MonitorCollector(_ScrapeView(self), namespace=namespace)],
            host=host,
            port=port,
            prepare=self._prepare_scrape,
            finish=self._finish_scrape,
            on_close=self._forget_server,
        )
        await server.start()
        self._servers.append(server)
        return server

    async def _prepare_scrape(self) -> None:
        if not self.running or self._history.latest is None:
            # Not sampling on a timer: read afresh so a scrape still shows the system.
            self._scrape_stats = await self.get_current_stats()

    def _finish_scrape(self) -> None:
        self._scrape_stats = None

    def _forget_server(self, server: MetricsServer) -> None:
        with contextlib.suppress(ValueError):
            self._servers.remove(server)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} interval={self._interval} running={self.running} "
            f"samples={self._samples} thresholds={len(self._thresholds)}>"
        )


class _ScrapeView:
    """What a monitor's own server exports: the fresh scrape reading, else the newest sample."""

    __slots__ = ("_monitor",)

    def __init__(self, monitor: ResourceMonitor) -> None:
        self._monitor = monitor

    @property
    def latest(self) -> SystemStats | None:
        return self._monitor._scrape_stats or self._monitor.latest

    @property
    def registry(self) -> MetricsRegistry:
        return self._monitor.registry


_SYSTEM_GROUPS = ("cpu.", "memory.", "io.", "process.")


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


_LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
