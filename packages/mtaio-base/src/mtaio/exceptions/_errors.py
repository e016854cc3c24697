"""The exception classes. See the package docstring for the rules they follow."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any


class MTAIOError(Exception):
    """Base class of every error mtaio raises.

    Args:
        message: A human-readable description, also available as :attr:`message`.
        *args: Further positional values, kept in :attr:`args` as for any exception.
    """

    message: str

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only state (attempts, errors, ...) lives in __dict__; pickling the args and
        # the dict lets every subclass cross a process boundary (ProcessPoolExecutor, logging).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[MTAIOError], args: tuple[Any, ...], state: dict[str, Any]) -> MTAIOError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigurationError(MTAIOError, ValueError):
    """An argument or setting is out of its accepted range (also a :class:`ValueError`)."""


class ConfigurationTypeError(ConfigurationError, TypeError):
    """An argument has the wrong type (also a :class:`TypeError` and a ``ValueError``)."""


class ExecutionError(MTAIOError):
    """A task could not be executed as asked."""


class TimeoutError(ExecutionError, builtins.TimeoutError):
    """An operation did not finish in time (also the builtin :class:`TimeoutError`).

    Args:
        message: What timed out.
        *args: Further positional values.
        timeout: The limit in seconds that was exceeded, when known.
    """

    timeout: float | None

    def __init__(self, message: str = "", *args: object, timeout: float | None = None) -> None:
        super().__init__(message, *args)
        self.timeout = timeout


class RetryError(ExecutionError):
    """Every attempt of a retried operation failed.

    Args:
        message: What was retried.
        attempts: How many attempts were made.
        last_error: The exception raised by the last attempt.
    """

    attempts: int | None
    last_error: BaseException | None

    def __init__(
        self,
        message: str = "",
        attempts: int | None = None,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error


class CircuitBreakerError(ExecutionError):
    """A circuit breaker is open and refused the call.

    Args:
        message: Why the call was refused.
        failures: The consecutive failures that opened the circuit.
        reset_timeout: Seconds the circuit stays open before a trial call.
    """

    failures: int | None
    reset_timeout: float | None

    def __init__(
        self,
        message: str = "",
        failures: int | None = None,
        reset_timeout: float | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = failures
        self.reset_timeout = reset_timeout


class ResourceError(MTAIOError):
    """A resource could not be used."""


class ResourceLimitError(ResourceError):
    """A limit (rate, concurrency, capacity) refused or timed out a request."""


class ResourceLockError(ResourceError):
    """A lock or permit was misused, e.g. released more often than acquired."""


class CacheError(MTAIOError):
    """A cache operation failed."""


class CacheKeyError(CacheError, KeyError):
    """A key is missing, expired, or not usable as a key (also a :class:`KeyError`)."""

    def __str__(self) -> str:
        # KeyError.__str__ would show repr(message); keep the plain message.
        return self.message


class CacheConnectionError(CacheError, ConnectionError):
    """A cache node could not be reached (also a :class:`ConnectionError`)."""


class EventError(MTAIOError):
    """An event operation failed."""


class EventEmitError(EventError):
    """An event could not be emitted."""


class EventHandlerError(EventError):
    """One or more event handlers raised.

    Args:
        message: What failed.
        errors: Every exception raised by the handlers of the emission, in handler order.
        event_name: The name of the event being delivered.
    """

    errors: tuple[BaseException, ...]
    event_name: str | None

    def __init__(
        self,
        message: str = "",
        errors: Sequence[BaseException] = (),
        event_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.errors = tuple(errors)
        self.event_name = event_name


class DataError(MTAIOError):
    """A data-processing operation failed."""


class PipelineError(DataError):
    """A pipeline could not process an item."""


class StageError(PipelineError):
    """A pipeline stage failed on an item.

    Args:
        message: What failed.
        stage: The name of the stage.
        item: The item the stage was processing.
    """

    stage: str | None
    item: object

    def __init__(self, message: str = "", stage: str | None = None, item: object = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.item = item


class StreamError(DataError):
    """A stream operator failed."""


class MonitoringError(MTAIOError):
    """A monitoring operation failed."""
