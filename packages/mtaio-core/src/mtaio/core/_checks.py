"""Argument checks shared by the executor and the queues."""

from __future__ import annotations

import math

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError


def check_priority(name: str, priority: object) -> float:
    """Check a priority: an int or a float, not a bool, not NaN (``±inf`` is fine).

    A priority is compared with every other one in a heap: a string or ``None`` raises
    ``TypeError`` deep inside a worker (the executor's submit workers died and respawned in
    a loop), and NaN compares false with everything, silently corrupting the order. Both are
    refused here, at the call. The callers test ``type(priority) is int`` first, so the
    common case costs one identity check.

    Args:
        name: The argument's name, used in the error message.
        priority: The value to check.

    Returns:
        ``priority``, unchanged.

    Raises:
        ConfigurationTypeError: If ``priority`` is not an int or a float (bools refused).
        ConfigurationError: If ``priority`` is NaN.
    """
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        raise ConfigurationTypeError(
            f"{name} must be a number (an int or a float; lower comes first), got {priority!r}"
        )
    if priority != priority or (isinstance(priority, float) and math.isnan(priority)):
        raise ConfigurationError(f"{name} must be a number, got nan (it orders with nothing)")
    return priority
