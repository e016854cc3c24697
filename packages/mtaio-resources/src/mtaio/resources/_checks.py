"""Argument checks this package needs beyond ``mtaio.exceptions.require_*``.

Rates, periods and bursts must be finite: ``per=inf`` would divide a token by an infinite
period and make the first wait a division by zero, ``tokens=inf`` would leave a borrowing
bucket in an infinite debt. Each check names the argument it refuses.
"""

from __future__ import annotations

import math
from typing import TypeVar

from mtaio.exceptions import ConfigurationError, require_non_negative, require_positive

N = TypeVar("N", int, float)


def require_finite_positive(name: str, value: N) -> N:
    """Check that ``value`` is a finite number greater than zero.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float (``bool`` included).
        ConfigurationError: If ``value`` is not greater than zero or not finite.
    """
    require_positive(name, value)
    if math.isinf(value):
        raise ConfigurationError(f"{name} must be a finite positive number, got {value!r}")
    return value


def require_timeout(name: str, value: float | None) -> float | None:
    """Check a wait bound: ``None`` (no bound) or a number ``>= 0`` (``inf`` means none).

    Raises:
        ConfigurationTypeError: If ``value`` is neither ``None`` nor a number.
        ConfigurationError: If ``value`` is negative or NaN.
    """
    if value is None:
        return None
    return float(require_non_negative(name, value))
