"""The event object, priorities and name patterns shared by the emitter and the channel."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, final

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError

T = TypeVar("T")


@final
class EventPriority(enum.IntEnum):
    """The order in which handlers of one event run.

    Higher values run first; handlers of equal priority run in registration order.
    ``MONITOR`` always runs last, after every other handler, to observe the outcome; it
    runs even when a handler stopped the event's propagation.
    Any integer from 0 (``LOWEST``) to 100 (``HIGHEST``) is accepted as a priority too.
    """

    HIGHEST = 100
    HIGH = 75
    NORMAL = 50
    LOW = 25
    LOWEST = 0
    MONITOR = -1


class Event(Generic[T]):
    """One emitted event: a name, a payload and metadata.

    Constructible positionally, ``Event("user.login", {"id": 1})``. A handler can set
    :attr:`propagate` to false (or call :meth:`stop_propagation`) so that the handlers of
    lower priority on the same emitter are skipped (``MONITOR`` handlers still run).

    Args:
        name: The event's name, e.g. ``"user.login"``.
        data: The payload.
        metadata: Free-form extra information; a new empty dict when omitted.
    """

    __slots__ = ("_metadata", "data", "name", "propagate")

    name: str
    data: T
    propagate: bool
    _metadata: dict[str, Any]  # unset until given or first read

    def __init__(self, name: str, data: T, metadata: Mapping[str, Any] | None = None) -> None:
        if name.__class__ is not str:
            check_name("name", name)
        self.name = name
        self.data = data
        # Left unset until first use: most events never touch their metadata, and the
        # emitter's hot path saves a store and a test per emit (see BareEvent).
        if metadata is not None:
            self._metadata = copy_metadata(metadata)
        self.propagate = True

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form extra information (a dict, created empty when none was given)."""
        try:
            return self._metadata
        except AttributeError:
            metadata: dict[str, Any] = {}
            self._metadata = metadata
            return metadata

    @metadata.setter
    def metadata(self, value: Mapping[str, Any]) -> None:
        self._metadata = copy_metadata(value)

    def stop_propagation(self) -> None:
        """Skip the lower-priority handlers (but ``MONITOR``) of the emitter delivering it."""
        self.propagate = False

    def copy(self) -> Event[T]:
        """Return a shallow copy with :attr:`propagate` reset to true."""
        return Event(self.name, self.data, self.metadata)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {self.data!r}, metadata={self.metadata!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.name, self.data, self.metadata) == (other.name, other.data, other.metadata)

    __hash__ = None  # type: ignore[assignment]  # mutable: equal by value, so not hashable


@final
class BareEvent(Event[Any]):
    """An :class:`Event` created without running ``__init__``: the emitter's hot path.

    ``BareEvent()`` is a C-level allocation; the emitter then fills the slots itself
    (``_metadata`` only when metadata was given). That is about 80 ns less per emit than
    ``Event(name, data)``, whose ``__init__`` is a Python call. Handlers see an ordinary
    :class:`Event` (``isinstance`` holds, ``repr``, equality and pickling behave the same).
    """

    __slots__ = ()
    __init__ = object.__init__

    def __reduce__(self) -> tuple[type[Event[Any]], tuple[str, Any, dict[str, Any]]]:
        return (Event, (self.name, self.data, self.metadata))


def check_name(argument: str, name: object) -> str:
    """Validate an event name or pattern: a non-empty string.

    Args:
        argument: The argument's name, for the error message.
        name: The value to check.

    Returns:
        ``name``.

    Raises:
        ConfigurationTypeError: If ``name`` is not a string.
        ConfigurationError: If ``name`` is empty.
    """
    if not isinstance(name, str):
        raise ConfigurationTypeError(f"{argument} must be a non-empty str, got {name!r}")
    if not name:
        raise ConfigurationError(f"{argument} must be a non-empty str, got ''")
    return name


def check_event_name(name: object, argument: str = "name") -> str:
    """Validate the name of an event (or topic) being sent: a non-empty string, no pattern.

    Raises:
        ConfigurationTypeError: If ``name`` is not a string.
        ConfigurationError: If ``name`` is empty or a pattern (holds ``*`` or ``?``).
    """
    check_name(argument, name)
    assert isinstance(name, str)
    if is_pattern(name):
        raise ConfigurationError(
            f"{argument} must be a name, not a pattern (patterns are for receiving), got {name!r}"
        )
    return name


def copy_metadata(metadata: object) -> dict[str, Any]:
    """Return a copy of ``metadata`` as a dict, refusing what is not a mapping.

    Raises:
        ConfigurationTypeError: If ``metadata`` is not a mapping.
    """
    if isinstance(metadata, dict):
        return metadata.copy()
    if isinstance(metadata, Mapping):
        return dict(metadata)
    raise ConfigurationTypeError(f"metadata must be a mapping or None, got {metadata!r}")


def is_pattern(name: str) -> bool:
    """Tell whether ``name`` is a glob pattern rather than an exact name."""
    return "*" in name or "?" in name


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """Compile a dotted glob pattern into a predicate on names.

    ``"*"`` alone and ``"**"`` match every name; inside a longer pattern ``*`` matches
    within one dot-separated segment (``"user.*"`` matches ``"user.login"`` but not
    ``"user.login.failed"``), ``**`` matches across segments (``"user.**"`` matches both)
    and ``?`` matches one character other than a dot.

    Args:
        pattern: The pattern.

    Returns:
        A function telling whether a name matches.
    """
    if pattern in ("*", "**"):
        return lambda name: True
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
            continue
        parts.append("[^.]*" if ch == "*" else "[^.]" if ch == "?" else re.escape(ch))
        i += 1
    regex = re.compile("".join(parts), re.DOTALL)

    def matches(name: str) -> bool:
        return regex.fullmatch(name) is not None

    return matches
