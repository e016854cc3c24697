"""Thresholds with sustain, hysteresis and cooldown; alerts; handler delivery."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, final

from mtaio.exceptions import (
    require_choice,
    require_positive_int,
)
from mtaio.typing import call_maybe_async

from ._log import logger
from ._metrics import LabelKey, label_key
from ._validate import require_finite, require_finite_non_negative, require_name

Direction = Literal["above", "below"]
ThresholdHandler = Callable[[str, float, float], Awaitable[Any] | Any]
AlertHandler = Callable[["Alert"], Awaitable[Any] | Any]


@final
@dataclass(frozen=True, slots=True)
class Alert:
    """A message delivered to the ``on_alert`` handlers.

    Attributes:
        message: What happened, for people.
        level: ``"info"``, ``"warning"``, ``"error"`` or ``"critical"``.
        timestamp: Wall-clock time it was raised.
        metric: The metric that crossed a threshold, if a threshold raised it.
        value: The metric's value then.
        threshold: The threshold value it crossed.
        details: Anything else the caller passed to ``alert()``.
    """

    message: str
    level: str = "warning"
    timestamp: float = 0.0
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


ALERT_LEVELS = ("debug", "info", "warning", "error", "critical")


@final
class Threshold:
    """A limit on one metric, and the state that keeps its alert from flapping.

    It fires when the metric has been past ``value`` (``above`` or ``below`` it) for
    ``sustained`` consecutive samples and at least ``cooldown`` seconds have passed since it
    last fired. Once fired it stays active until the metric comes back past ``value`` by more
    than ``hysteresis`` (below ``value - hysteresis`` for an ``above`` threshold), which
    clears it.

    Attributes:
        metric: The metric name (a :data:`SYSTEM_METRICS` path or an application metric).
        value: The limit.
        direction: ``"above"`` or ``"below"``.
        sustained: Consecutive breaching samples needed to fire.
        hysteresis: Margin the value must come back by to clear.
        cooldown: Minimum seconds between two firings.
        labels: Labels of the application metric series watched (system metrics: none).
        active: Whether it has fired and not cleared yet.
        breaches: Consecutive breaching samples so far.
        fired: How many times it fired.
        last_value: The value seen at the last evaluation.
        seen: Whether the metric has had a value at any evaluation.
        missed: Samples at which the metric had no value (an application metric not
            recorded yet; a name that is never recorded is reported, see
            :attr:`MonitorStats.unrecorded_thresholds`).
    """

    __slots__ = (
        "_last_fired",
        "active",
        "breaches",
        "cooldown",
        "direction",
        "fired",
        "hysteresis",
        "label_key",
        "labels",
        "last_value",
        "metric",
        "missed",
        "seen",
        "sustained",
        "value",
    )

    def __init__(
        self,
        metric: str,
        value: float,
        *,
        direction: Direction = "above",
        sustained: int = 1,
        hysteresis: float = 0.0,
        cooldown: float = 0.0,
        labels: Mapping[str, object] | None = None,
    ) -> None:
        self.metric = require_name("metric", metric)
        self.value = require_finite("value", value)
        self.direction: Direction = require_choice("direction", direction, ("above", "below"))
        self.sustained = require_positive_int("sustained", sustained)
        self.hysteresis = require_finite_non_negative("hysteresis", hysteresis)
        self.cooldown = require_finite_non_negative("cooldown", cooldown)
        self.label_key: LabelKey = label_key(labels)
        self.labels = dict(self.label_key)
        self.active = False
        self.breaches = 0
        self.fired = 0
        self.last_value = math.nan
        self.seen = False
        self.missed = 0
        self._last_fired: float | None = None

    @property
    def key(self) -> tuple[str, LabelKey, str]:
        """What identifies the threshold: one per metric, labels and direction."""
        return (self.metric, self.label_key, self.direction)

    def evaluate(self, value: float, now: float) -> Literal["fire", "clear"] | None:
        """Feed one sample; return ``"fire"``, ``"clear"`` or None (nothing to report)."""
        self.last_value = value
        self.seen = True
        above = self.direction == "above"
        if self.active:
            cleared = (
                value < self.value - self.hysteresis
                if above
                else value > self.value + self.hysteresis
            )
            if cleared:
                self.active = False
                self.breaches = 0
                return "clear"
            return None
        if value > self.value if above else value < self.value:
            self.breaches += 1
            if self.breaches >= self.sustained and (
                self._last_fired is None or now - self._last_fired >= self.cooldown
            ):
                self.active = True
                self.fired += 1
                self._last_fired = now
                return "fire"
        else:
            self.breaches = 0
        return None

    def reset(self) -> None:
        """Forget the state (active, breaches, cooldown); keep the settings."""
        self.active = False
        self.breaches = 0
        self._last_fired = None

    def to_dict(self) -> dict[str, Any]:
        """Return the settings and state as plain data."""
        return {
            "metric": self.metric,
            "labels": self.labels,
            "value": self.value,
            "direction": self.direction,
            "sustained": self.sustained,
            "hysteresis": self.hysteresis,
            "cooldown": self.cooldown,
            "active": self.active,
            "breaches": self.breaches,
            "fired": self.fired,
            "last_value": self.last_value,
            "seen": self.seen,
            "missed": self.missed,
        }

    def __repr__(self) -> str:
        return (
            f"Threshold({self.metric!r}, {self.value!r}, direction={self.direction!r}, "
            f"sustained={self.sustained}, hysteresis={self.hysteresis}, "
            f"cooldown={self.cooldown}, active={self.active})"
        )


async def deliver(handlers: list[Callable[..., Any]], *args: Any) -> int:
    """Call each handler in turn (sync or async); return how many raised.

    A failing handler is logged and does not stop the others. Cancellation propagates.
    """
    errors = 0
    for handler in list(handlers):
        try:
            await call_maybe_async(handler, *args)
        except Exception:
            errors += 1
            logger.exception("monitoring handler %r failed", handler)
    return errors
