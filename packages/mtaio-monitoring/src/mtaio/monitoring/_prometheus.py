"""Prometheus exposition: a collector and an HTTP endpoint on the event loop.

prometheus_client is imported here only, and this module only when Prometheus export is
asked for, so ``mtaio.monitoring`` imports without the ``prometheus`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Self, cast, final

from mtaio.exceptions import require_non_negative_int

from ._alerts import logger
from ._errors import MissingDependencyError
from ._metrics import Counter, CounterChild, Gauge, GaugeChild, Histogram, HistogramChild

if TYPE_CHECKING:
    from ._monitor import ResourceMonitor
    from ._stats import SystemStats


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


@final
class MonitorCollector:
    """A prometheus_client collector of a monitor's system and application metrics.

    System figures come from the monitor's newest sample (nothing is read from the OS at
    scrape time, so a scrape from another thread never races the loop); application metrics
    are read live.

    Args:
        monitor: The monitor to expose.
        namespace: Prefix of the system metric names (``mtaio_cpu_usage_percent``).
    """

    def __init__(self, monitor: ResourceMonitor, namespace: str = "mtaio") -> None:
        self._pc = _import_prometheus()
        self._monitor = monitor
        self._ns = metric_name(namespace) + "_" if namespace else ""
        self.override: SystemStats | None = None

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (called by prometheus_client on every scrape)."""
        stats = self.override or self._monitor.latest
        if stats is not None:
            yield from self._system(stats)
        yield from self._application()

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

    def _application(self) -> Iterator[Any]:
        core = self._pc.core
        for metric in self._monitor.registry:
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
                    family.add_metric(values, cast("CounterChild | GaugeChild", child).value)
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


_MAX_REQUEST = 16 * 1024
_READ_TIMEOUT = 10.0


@final
class MetricsServer:
    """A tiny HTTP endpoint serving the Prometheus text format at ``/metrics`` (and ``/``).

    It runs on the event loop: no thread, and it closes with the monitor. Requests larger than
    16 KiB or slower than 10 s are dropped. Get one from
    :meth:`ResourceMonitor.serve_metrics`.
    """

    def __init__(
        self, monitor: ResourceMonitor, *, host: str = "127.0.0.1", port: int = 0, namespace: str
    ) -> None:
        self._pc = _import_prometheus()
        self._monitor = monitor
        self.host = host
        self._port = require_non_negative_int("port", port)
        self._collector = MonitorCollector(monitor, namespace)
        self._registry = self._pc.CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked)."""
        return self._port

    @property
    def url(self) -> str:
        """The scrape URL, ``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}/metrics"

    async def start(self) -> None:
        """Bind and start serving."""
        self._server = await asyncio.start_server(
            self._handle, self.host, self._port, limit=_MAX_REQUEST
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("serving Prometheus metrics on %s", self.url)

    async def render(self) -> bytes:
        """Return the exposition text (what a scrape receives)."""
        monitor = self._monitor
        if not monitor.running or monitor.latest is None:
            # Not sampling on a timer: read afresh so a scrape still shows the system.
            self._collector.override = await monitor.get_current_stats()
        try:
            out: bytes = self._pc.generate_latest(self._registry)
        finally:
            self._collector.override = None
        return out

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            parts = head.split(b"\r\n", 1)[0].split()
            method = parts[0] if parts else b""
            path = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
            if method not in (b"GET", b"HEAD"):
                status, body, ctype = (
                    "405 Method Not Allowed",
                    b"method not allowed\n",
                    "text/plain",
                )
            elif path not in (b"/", b"/metrics"):
                status, body, ctype = "404 Not Found", b"not found\n", "text/plain"
            else:
                try:
                    status, body, ctype = (
                        "200 OK",
                        await self.render(),
                        self._pc.CONTENT_TYPE_LATEST,
                    )
                except Exception:
                    logger.exception("rendering the metrics failed")
                    status, body, ctype = "500 Internal Server Error", b"error\n", "text/plain"
            header = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            writer.write(header if method == b"HEAD" else header + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        """Stop listening and drop open connections (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()
        self._monitor._forget_server(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
