import math

import pytest

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    require_callable,
    require_choice,
    require_non_negative,
    require_non_negative_int,
    require_number,
    require_positive,
    require_positive_int,
)


def test_require_positive_accepts_and_returns() -> None:
    assert require_positive("rate", 0.5) == 0.5
    assert require_positive("rate", 3) == 3
    assert require_positive("rate", math.inf) == math.inf


@pytest.mark.parametrize("value", [0, -1, -0.5, -math.inf])
def test_require_positive_rejects_non_positive(value: float) -> None:
    with pytest.raises(ConfigurationError, match=r"^rate must be a positive number \(> 0\), got"):
        require_positive("rate", value)


@pytest.mark.parametrize("value", ["1", None, True, [1]])
def test_require_positive_rejects_non_numbers(value: object) -> None:
    with pytest.raises(ConfigurationTypeError, match=r"^rate must be a positive number, got"):
        require_positive("rate", value)  # type: ignore[type-var]


def test_nan_is_refused_everywhere() -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a non-negative number, got nan"):
        require_non_negative("timeout", math.nan)


def test_require_non_negative() -> None:
    assert require_non_negative("timeout", 0) == 0
    with pytest.raises(ConfigurationError, match=r"timeout must be a non-negative number \(>= 0\)"):
        require_non_negative("timeout", -0.1)


def test_require_positive_int() -> None:
    assert require_positive_int("limit", 1) == 1
    with pytest.raises(
        ConfigurationError, match=r"limit must be a positive integer \(>= 1\), got 0"
    ):
        require_positive_int("limit", 0)
    with pytest.raises(ConfigurationTypeError, match=r"limit must be a positive integer, got 1\.5"):
        require_positive_int("limit", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError):
        require_positive_int("limit", True)


def test_require_non_negative_int() -> None:
    assert require_non_negative_int("maxsize", 0) == 0
    with pytest.raises(ConfigurationError, match="maxsize must be a non-negative integer"):
        require_non_negative_int("maxsize", -1)


def test_require_callable() -> None:
    assert require_callable("handler", print) is print
    with pytest.raises(ConfigurationTypeError, match="handler must be callable, got 42"):
        require_callable("handler", 42)


def test_require_choice() -> None:
    assert require_choice("policy", "lru", ("lru", "lfu")) == "lru"
    with pytest.raises(ConfigurationError, match="policy must be one of 'lru', 'lfu'; got 'x'"):
        require_choice("policy", "x", ("lru", "lfu"))
    with pytest.raises(ConfigurationError):
        require_choice("policy", ["unhashable"], {"lru"})


def test_require_number_accepts_any_real_number() -> None:
    for value in (-1, 0, 1.5, 10**400, math.inf, -math.inf):
        assert require_number("priority", value) == value


@pytest.mark.parametrize("value", ["5", None, True, [1]])
def test_require_number_refuses_non_numbers_by_type(value: object) -> None:
    with pytest.raises(ConfigurationTypeError, match="priority must be an int, got"):
        require_number("priority", value, "an int")  # type: ignore[type-var]


def test_require_number_refuses_nan() -> None:
    with pytest.raises(ConfigurationError, match="priority must be a number, got nan"):
        require_number("priority", math.nan)
    with pytest.raises(ConfigurationError, match="positive number"):
        require_positive("rate", math.nan)
    assert require_positive("rate", 10**400) == 10**400  # no OverflowError on a huge int
