"""Argument checks of mtaio.monitoring, beside the shared ones of :mod:`mtaio.exceptions`.

Every check names the argument it refuses and raises :class:`ConfigurationTypeError` for a
value of the wrong type (``"5"``, ``None``, ``True`` where a number is expected) and
:class:`ConfigurationError` for a value of the right type out of range (NaN, an infinity).
"""

from __future__ import annotations

import math
from typing import cast

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError
from mtaio.exceptions import require_number as _require_number


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationTypeError(f"{name} must be a number (int or float), got {value!r}")
    return float(value)


def require_number(name: str, value: object) -> float:
    """Check that ``value`` is a real number other than NaN (infinities pass).

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value`` as a float.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float (a bool is refused).
        ConfigurationError: If ``value`` is NaN.
    """
    return float(_require_number(name, cast(float, value), "a number (int or float)"))


def require_finite(name: str, value: object) -> float:
    """Check that ``value`` is a finite real number (not NaN, not an infinity, not a bool).

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value`` as a float.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float.
        ConfigurationError: If ``value`` is NaN or infinite.
    """
    out = _real(name, value)
    if not math.isfinite(out):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    return out


def require_finite_non_negative(name: str, value: object) -> float:
    """Check that ``value`` is a finite real number >= 0 (see :func:`require_finite`)."""
    out = require_finite(name, value)
    if out < 0:
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
    return out


def require_quantile(name: str, value: object) -> float:
    """Check that ``value`` is a quantile: a real number from 0 to 1 (not a bool).

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float.
        ConfigurationError: If ``value`` is NaN or outside [0, 1].
    """
    out = _real(name, value)
    if not 0.0 <= out <= 1.0:
        raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}")
    return out


def require_bool(name: str, value: object) -> bool:
    """Check that ``value`` is a bool (``1``, ``"yes"`` and ``None`` are refused).

    Raises:
        ConfigurationTypeError: If ``value`` is not True or False.
    """
    if not isinstance(value, bool):
        raise ConfigurationTypeError(f"{name} must be True or False, got {value!r}")
    return value


def require_name(arg: str, value: object) -> str:
    """Check that ``value`` is a non-empty string; the error names ``arg``.

    Raises:
        ConfigurationTypeError: If ``value`` is not a string.
        ConfigurationError: If it is empty.
    """
    if not isinstance(value, str):
        raise ConfigurationTypeError(f"{arg} must be a non-empty string, got {value!r}")
    if not value:
        raise ConfigurationError(f"{arg} must be a non-empty string, got ''")
    return value
