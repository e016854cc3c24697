"""Runtime-checkable protocols: ``isinstance(obj, AsyncCloseable)`` works on each."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar, runtime_checkable

_T_co = TypeVar("_T_co", covariant=True)


@runtime_checkable
class Resource(Protocol):
    """Something acquired and released asynchronously (a limiter, a lock, a connection)."""

    async def acquire(self) -> Any:
        """Acquire the resource."""
        ...

    async def release(self) -> Any:
        """Release the resource."""
        ...


@runtime_checkable
class AsyncCloseable(Protocol):
    """Something with an asynchronous ``close()``."""

    async def close(self) -> None:
        """Release everything the object holds."""
        ...


@runtime_checkable
class ResourceManager(Protocol):
    """Keeps resources and closes them together, in reverse order of acquisition."""

    async def acquire(self, resource: AsyncCloseable) -> Any:
        """Register ``resource`` to be closed by :meth:`cleanup`."""
        ...

    async def cleanup(self) -> None:
        """Close every registered resource, the newest first."""
        ...


@runtime_checkable
class Event(Protocol[_T_co]):
    """A named event carrying data."""

    @property
    def name(self) -> str:
        """The event's name."""
        ...

    @property
    def data(self) -> _T_co:
        """The event's payload."""
        ...


@runtime_checkable
class EventHandler(Protocol):
    """A callable that receives an event; it may be synchronous or asynchronous."""

    def __call__(self, event: Any, /) -> Any:
        """Handle ``event``; the result may be awaitable."""
        ...


@runtime_checkable
class CacheKey(Protocol):
    """A value usable as a cache key: hashable and comparable for equality."""

    def __hash__(self) -> int: ...

    def __eq__(self, other: object, /) -> bool: ...


@runtime_checkable
class CacheValue(Protocol):
    """A value a cache can hold. Any object qualifies; the protocol names the role."""


@runtime_checkable
class Factory(Protocol[_T_co]):
    """A callable without arguments producing a value."""

    def __call__(self) -> _T_co:
        """Produce a value."""
        ...


@runtime_checkable
class AsyncFactory(Protocol[_T_co]):
    """A callable without arguments producing an awaitable value."""

    def __call__(self) -> Awaitable[_T_co]:
        """Produce an awaitable of a value."""
        ...


@runtime_checkable
class ConfigProtocol(Protocol):
    """Read access to settings by name."""

    def get(self, key: str, default: Any = None) -> Any:
        """Return the setting ``key``, or ``default`` when it is not set."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Return every setting as a new dict."""
        ...
