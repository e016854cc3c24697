"""The exception classes. See the package docstring for the rules they follow."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Self


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


class MTAIOErrorGroup(MTAIOError, ExceptionGroup[Exception]):
    """Several failures at once: an :class:`ExceptionGroup` that is also an :class:`MTAIOError`.

    Every mtaio API that reports more than one failure from one call (handlers of one
    emission, tasks of one gather, items of one pipeline run) raises a subclass of this, so
    ``except* ValueError:`` picks out the failures a caller cares about and
    ``except MTAIOError:`` still catches the whole report. Splitting the group (``except*``,
    :meth:`split`, :meth:`subgroup`) keeps the subclass and its attributes.

    Args:
        message: What failed; :attr:`message` as for every ``ExceptionGroup``.
        exceptions: The failures, in the order they happened (at least one).

    .. versionadded:: 0.2
    """

    def __new__(cls, message: str, exceptions: Sequence[Exception], /) -> Self:
        return super().__new__(cls, message, exceptions)

    def __init__(self, message: str, exceptions: Sequence[Exception], /) -> None:
        # BaseExceptionGroup holds the message (read-only) and the exceptions: nothing to set.
        ExceptionGroup.__init__(self, message, exceptions)

    def derive(self, excs: Sequence[Exception], /) -> Self:  # type: ignore[override]
        """Return a group of the same class and attributes holding ``excs`` (for ``except*``)."""
        group = type(self).__new__(type(self), self.message, excs)
        ExceptionGroup.__init__(group, self.message, excs)
        group.__dict__.update(self.__dict__)
        return group

    def __str__(self) -> str:
        return ExceptionGroup.__str__(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_group, (type(self), self.message, list(self.exceptions), self.__dict__))


def _rebuild_group(
    cls: type[MTAIOErrorGroup], message: str, excs: list[Exception], state: dict[str, Any]
) -> MTAIOErrorGroup:
    group = cls.__new__(cls, message, excs)
    ExceptionGroup.__init__(group, message, excs)
    group.__dict__.update(state)
    return group


class ConfigurationError(MTAIOError, ValueError):
    """An argument or setting is out of its accepted range (also a :class:`ValueError`)."""


class ConfigurationTypeError(ConfigurationError, TypeError):
    """An argument has the wrong type (also a :class:`TypeError` and a ``ValueError``)."""


class DependencyError(MTAIOError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    Also an :class:`ImportError`. Raised when the part that needs it is constructed, never at
    import: every package imports without its extras.

    .. versionadded:: 0.2
    """


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


class ResourceTimeoutError(ResourceLimitError, TimeoutError):
    """A wait for a limited resource (rate, concurrency, capacity) ran out of time.

    Both a :class:`ResourceLimitError` and a :class:`TimeoutError` (and so the builtin
    ``TimeoutError``): ``except TimeoutError:`` catches every wait that ran out of time in
    mtaio, ``except ResourceLimitError:`` every refusal of a limit.

    .. versionadded:: 0.2
    """


#: The name the predecessor (mtaio 0.1.0) used for a refused or timed-out limit.
RateLimitError = ResourceLimitError


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


class EventHandlerError(EventError, MTAIOErrorGroup):
    """One or more event handlers raised: an exception group of their errors.

    Args:
        message: What failed.
        errors: Every exception raised by the handlers of the emission, in handler order
            (at least one).
        event_name: The name of the event being delivered.

    .. versionchanged:: 0.2
        An :class:`ExceptionGroup` (``except*`` works); :attr:`errors` is
        :attr:`exceptions`.
    """

    event_name: str | None

    def __new__(
        cls, message: str, errors: Sequence[Exception], event_name: str | None = None
    ) -> Self:
        return super().__new__(cls, message, errors)

    def __init__(
        self, message: str, errors: Sequence[Exception], event_name: str | None = None
    ) -> None:
        super().__init__(message, errors)
        self.event_name = event_name

    @property
    def errors(self) -> tuple[Exception, ...]:
        """The handlers' exceptions, in handler order (the same as :attr:`exceptions`)."""
        return self.exceptions


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
