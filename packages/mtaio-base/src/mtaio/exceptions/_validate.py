"""Argument checks: every mtaio constructor fails early with a message naming the argument.

They return the checked value so a constructor can write ``self._rate = require_positive(
"rate", rate)``. Booleans are refused where numbers are expected (``True`` is an ``int``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from ._errors import ConfigurationError, ConfigurationTypeError

C = TypeVar("C")
N = TypeVar("N", int, float)


def _number(name: str, value: object, kind: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationTypeError(f"{name} must be {kind}, got {value!r}")
    if value != value:  # NaN (math.isnan would overflow on an int past 1e308)
        raise ConfigurationError(f"{name} must be {kind}, got nan")
    return value


def require_number(name: str, value: N, kind: str = "a number") -> N:
    """Check that ``value`` is an int or a float, not a bool, not NaN (``±inf`` allowed).

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.
        kind: What the message says the argument must be (``"a number"``).

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float (bools refused).
        ConfigurationError: If ``value`` is NaN.
    """
    _number(name, value, kind)
    return value


def require_positive(name: str, value: N) -> N:
    """Check that ``value`` is a number greater than zero (``inf`` allowed).

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float.
        ConfigurationError: If ``value`` is not greater than zero.
    """
    if _number(name, value, "a positive number") <= 0:
        raise ConfigurationError(f"{name} must be a positive number (> 0), got {value!r}")
    return value


def require_non_negative(name: str, value: N) -> N:
    """Check that ``value`` is a number greater than or equal to zero.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int or float.
        ConfigurationError: If ``value`` is negative.
    """
    if _number(name, value, "a non-negative number") < 0:
        raise ConfigurationError(f"{name} must be a non-negative number (>= 0), got {value!r}")
    return value


def _integer(name: str, value: object, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationTypeError(f"{name} must be {kind}, got {value!r}")
    return value


def require_positive_int(name: str, value: int) -> int:
    """Check that ``value`` is an integer greater than zero.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int.
        ConfigurationError: If ``value`` is less than 1.
    """
    if _integer(name, value, "a positive integer") < 1:
        raise ConfigurationError(f"{name} must be a positive integer (>= 1), got {value!r}")
    return value


def require_non_negative_int(name: str, value: int) -> int:
    """Check that ``value`` is an integer greater than or equal to zero.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigurationTypeError: If ``value`` is not an int.
        ConfigurationError: If ``value`` is negative.
    """
    if _integer(name, value, "a non-negative integer") < 0:
        raise ConfigurationError(f"{name} must be a non-negative integer (>= 0), got {value!r}")
    return value


def require_callable(name: str, value: C) -> C:
    """Check that ``value`` is callable.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigurationTypeError: If ``value`` is not callable.
    """
    if not callable(value):
        raise ConfigurationTypeError(f"{name} must be callable, got {value!r}")
    return value


def require_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """Check that ``value`` is one of ``choices``.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.
        choices: The accepted values, listed in the message.

    Returns:
        ``value``, unchanged.

    Raises:
        ConfigurationError: If ``value`` is not among ``choices``.
    """
    try:
        ok = value in choices
    except TypeError:
        ok = False
    if not ok:
        accepted = ", ".join(repr(c) for c in choices)
        raise ConfigurationError(f"{name} must be one of {accepted}; got {value!r}")
    return value
