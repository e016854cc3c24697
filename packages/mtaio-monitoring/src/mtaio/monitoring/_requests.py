"""The request tracker: counts, errors, latencies and requests in flight."""

from __future__ import annotations

import asyncio
from typing import final

from mtaio.exceptions import ConfigurationTypeError
from mtaio.typing import Clock

from ._blocks import Block
from ._metrics import DEFAULT_BUCKETS, Histogram, MetricsRegistry
from ._validate import require_bool, require_finite_non_negative

#: Histogram fed by the request tracker (seconds per request, labelled by request name).
REQUEST_LATENCY_METRIC = "request_latency_seconds"


@final
class RequestCounts:
    """The totals of a monitor's request tracker, and its latency histogram."""

    __slots__ = (
        "_hist",
        "_registry",
        "cancelled_count",
        "clock",
        "error_count",
        "in_flight",
        "latency_sum",
        "request_count",
    )

    def __init__(self, registry: MetricsRegistry, clock: Clock) -> None:
        self._registry = registry
        self._hist: Histogram | None = None
        self.clock = clock
        self.request_count = 0
        self.error_count = 0
        self.cancelled_count = 0
        self.latency_sum = 0.0
        self.in_flight = 0

    def record(self, latency: float, *, error: bool, name: str | None) -> None:
        """Count one finished request of ``latency`` seconds."""
        latency = require_finite_non_negative("latency", latency)
        require_bool("error", error)
        if name is not None and not isinstance(name, str):
            raise ConfigurationTypeError(f"name must be a string or None, got {name!r}")
        self.request_count += 1
        self.latency_sum += latency
        if error:
            self.error_count += 1
        hist = self._hist
        if hist is None:
            hist = self._hist = self._registry.histogram(
                REQUEST_LATENCY_METRIC, "Seconds per tracked request", buckets=DEFAULT_BUCKETS
            )
        hist.labels(None if name is None else {"request": name}).observe(latency)


@final
class TrackedRequest(Block):
    """The context manager :meth:`ResourceMonitor.track_request` returns.

    Usable once, with ``async with`` or ``with``. A request that raises counts as an error;
    a cancelled one counts as neither a request nor an error (it did not finish).
    """

    __slots__ = ("_counts", "_name", "_start", "latency")

    def __init__(self, counts: RequestCounts, name: str | None) -> None:
        self._counts = counts
        self._name = name
        self._start = 0.0
        self.latency: float | None = None

    def _enter(self) -> None:
        self._counts.in_flight += 1
        self._start = self._counts.clock()

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        counts = self._counts
        counts.in_flight -= 1
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            counts.cancelled_count += 1
            return
        self.latency = max(0.0, counts.clock() - self._start)
        counts.record(self.latency, error=exc_type is not None, name=self._name)

    def __repr__(self) -> str:
        return f"<TrackedRequest name={self._name!r} latency={self.latency!r}>"
