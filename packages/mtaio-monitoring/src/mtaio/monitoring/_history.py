"""The history of a monitor: a ring buffer of samples and the figures drawn from it."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import final

from mtaio.exceptions import ConfigurationError, require_choice, require_positive_int

from ._metrics import quantile
from ._stats import SYSTEM_METRICS, SystemStats, resolve_metric
from ._validate import require_quantile

#: The most samples a history keeps (a sample a second for about 115 days).
MAX_HISTORY = 10_000_000


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
class History:
    """A ring buffer of :class:`SystemStats`, oldest first, and queries over it."""

    __slots__ = ("_samples",)

    def __init__(self, size: int) -> None:
        require_positive_int("history_size", size)
        if size > MAX_HISTORY:
            raise ConfigurationError(
                f"history_size must be at most {MAX_HISTORY:,} samples, got {size!r}"
            )
        self._samples: deque[SystemStats] = deque(maxlen=size)

    @property
    def size(self) -> int:
        """Capacity of the ring buffer."""
        maxlen = self._samples.maxlen
        assert maxlen is not None
        return maxlen

    def __len__(self) -> int:
        return len(self._samples)

    def append(self, stats: SystemStats) -> None:
        """Add a sample (the oldest is dropped when full)."""
        self._samples.append(stats)

    @property
    def latest(self) -> SystemStats | None:
        """The newest sample, or None."""
        return self._samples[-1] if self._samples else None

    def window(self, last: int | None = None) -> list[SystemStats]:
        """Return the samples, oldest first (only the ``last`` N if given)."""
        if last is None:
            return list(self._samples)
        require_positive_int("last", last)
        return list(self._samples)[-last:]

    def values(self, metric: str, last: int | None = None) -> list[float]:
        """Return one system metric's values over the window, oldest first."""
        given: object = metric  # checked at run time: untyped callers pass anything
        name: str = require_choice(
            "metric", resolve_metric(given) if isinstance(given, str) else given, SYSTEM_METRICS
        )
        return [s.flat()[name] for s in self.window(last)]

    def summary(self, metric: str, last: int | None = None) -> HistorySummary:
        """Return count, mean, min, max, p50, p95, p99 and last of a metric over the window."""
        data = self.values(metric, last)
        name = resolve_metric(metric)
        if not data:
            nan = math.nan
            return HistorySummary(name, 0, nan, nan, nan, nan, nan, nan, nan)
        ordered = sorted(data)
        return HistorySummary(
            name,
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
        """Return the ``q`` quantile (0-1) of a metric over the window."""
        require_quantile("q", q)
        return quantile(sorted(self.values(metric, last)), q)
