"""Result, an explicit success-or-error value, and Config, a settings mapping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar, final

from mtaio.exceptions import ConfigurationTypeError

_T = TypeVar("_T")


@final
class Result(Generic[_T]):
    """The outcome of an operation: a value or an error, never both.

    Build one with :meth:`ok` or :meth:`fail`; ``bool(result)`` is ``result.success``.

    Example:
        >>> Result.ok(3).unwrap()
        3
        >>> Result.fail(ValueError("no")).success
        False
    """

    __slots__ = ("_error", "_value")

    def __init__(self, value: _T | None = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    @classmethod
    def ok(cls, value: _T) -> Result[_T]:
        """Return a successful result holding ``value``."""
        return cls(value)

    @classmethod
    def fail(cls, error: BaseException) -> Result[_T]:
        """Return a failed result holding ``error``."""
        return cls(None, error)

    @property
    def value(self) -> _T | None:
        """The value, or ``None`` for a failure."""
        return self._value

    @property
    def error(self) -> BaseException | None:
        """The error, or ``None`` for a success."""
        return self._error

    @property
    def success(self) -> bool:
        """Whether the operation succeeded."""
        return self._error is None

    def unwrap(self) -> _T:
        """Return the value, or raise the error.

        Raises:
            BaseException: The stored error, for a failed result.
        """
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # a success holds a _T (maybe None)

    def __bool__(self) -> bool:
        return self.success

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return bool(self._value == other._value and self._error is other._error)

    def __hash__(self) -> int:
        return hash((Result, id(self._error))) if self._error else hash((Result, self._value))

    def __repr__(self) -> str:
        if self._error is not None:
            return f"Result.fail({self._error!r})"
        return f"Result.ok({self._value!r})"


@final
class Config(Mapping[str, Any]):
    """An immutable mapping of settings with attribute access; satisfies ``ConfigProtocol``.

    Example:
        >>> cfg = Config({"timeout": 5.0}, retries=3)
        >>> cfg.timeout, cfg["retries"], cfg.get("missing", 0)
        (5.0, 3, 0)
        >>> cfg.replace(retries=4).retries
        4
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None, /, **settings: Any) -> None:
        merged = dict(data or {})
        merged.update(settings)
        keys: list[object] = list(merged)  # checked at run time: a dict may hold any key
        for key in keys:
            if not isinstance(key, str):
                raise ConfigurationTypeError(f"Config keys must be str, got {key!r}")
        object.__setattr__(self, "_data", merged)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"Config has no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is immutable; use replace()")

    def to_dict(self) -> dict[str, Any]:
        """Return every setting as a new dict."""
        return dict(self._data)

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied."""
        return Config(self._data, **changes)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"
