"""The bad-values check every package runs over its public arguments.

Each argument is fed the same hostile values; each value is either accepted or refused
with a :class:`~mtaio.exceptions.ConfigurationError` naming the argument, and a refused
value of the wrong type (not a number) with a
:class:`~mtaio.exceptions.ConfigurationTypeError`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

__all__ = (
    "BAD_VALUES",
    "check_value",
    "is_int",
    "is_real",
    "non_negative",
    "non_negative_int",
    "optional",
    "positive",
    "positive_int",
)

#: Ten values that break careless validation: signs, NaN, infinities, a numeric string, a
#: bool (an ``int`` to ``isinstance``), a float where an int is meant, a huge int, ``None``.
BAD_VALUES: Final[tuple[object, ...]] = (
    -1,
    0,
    math.nan,
    math.inf,
    -math.inf,
    "5",
    True,
    1.5,
    10**12,
    None,
)


def is_real(value: object) -> bool:
    """Whether ``value`` is an int or float, not a bool, not NaN (infinities are real)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def is_int(value: object) -> bool:
    """Whether ``value`` is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive(value: object) -> bool:
    """Whether ``value`` is a real number above zero (``inf`` included)."""
    return is_real(value) and value > 0  # type: ignore[operator]


def non_negative(value: object) -> bool:
    """Whether ``value`` is a real number of zero or more (``inf`` included)."""
    return is_real(value) and value >= 0  # type: ignore[operator]


def positive_int(value: object) -> bool:
    """Whether ``value`` is an int (not a bool) above zero."""
    return is_int(value) and value > 0  # type: ignore[operator]


def non_negative_int(value: object) -> bool:
    """Whether ``value`` is an int (not a bool) of zero or more."""
    return is_int(value) and value >= 0  # type: ignore[operator]


def optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    """``check``, also accepting ``None``."""
    return lambda value: value is None or check(value)


async def check_value(
    argument: str,
    value: object,
    accepts: Callable[[object], bool],
    call: Callable[[Any], Awaitable[object]],
    *,
    typed: bool = True,
) -> ConfigurationError | None:
    """Feed ``value`` to ``call`` and check it was accepted or refused as it should be.

    Example::

        for value in BAD_VALUES:
            await check_value("limit", value, optional(positive_int), make_executor)

    Args:
        argument: The argument's name: a refusal's message must contain it.
        value: The value fed to it.
        accepts: Whether the argument accepts a value.
        call: An async callable passing the value to the code under test.
        typed: Also require a refused value that is not a number (not an int or float,
            or a bool) to raise :class:`~mtaio.exceptions.ConfigurationTypeError`.

    Returns:
        The error that refused the value, or ``None`` when it was accepted.

    Raises:
        AssertionError: A value accepted that should not be, refused that should not be,
            refused without naming ``argument``, or refused by the wrong error class.
    """
    refused: ConfigurationError | None = None
    try:
        await call(value)
    except ConfigurationError as error:
        refused = error
    if refused is None:
        assert accepts(value), f"{argument}={value!r} was accepted"
        return None
    assert not accepts(value), f"{argument}={value!r} refused: {refused}"
    assert argument in str(refused), f"the error does not name {argument}: {refused}"
    if typed and (not isinstance(value, int | float) or isinstance(value, bool)):
        assert isinstance(refused, ConfigurationTypeError), repr(refused)
    return refused
