"""Observable: change notifications to sync or async observers, with batching."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar, cast, final

from mtaio.exceptions import require_callable, require_non_negative_int
from mtaio.typing import is_async_callable

T = TypeVar("T")

logger = logging.getLogger("mtaio.data")


class ChangeType(enum.Enum):
    """What kind of change a :class:`Change` reports.

    .. versionadded:: 0.1
    """

    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"
    BATCH = "batch"
    """Several changes delivered at once: ``value`` is the tuple of them (``batch_operations``)."""


@final
@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """One change of observed data.

    Args:
        type: The kind of change.
        value: The new value (for ``BATCH``, the tuple of the batched changes).
        old_value: The previous value, if known.
        path: Where the change happened (a key, an attribute path), if relevant.
        timestamp: Wall-clock time of the change (``time.time()``), for display.

    .. versionadded:: 0.1
    """

    type: ChangeType
    value: T | None = None
    old_value: T | None = None
    path: str | None = None
    timestamp: float = field(default_factory=time.time)

    @property
    def changes(self) -> tuple[Change[T], ...]:
        """The changes this notification carries: the batched ones for ``BATCH``, else itself."""
        if self.type is ChangeType.BATCH:
            return cast("tuple[Change[T], ...]", self.value)
        return (self,)


Observer: TypeAlias = Callable[[Change[T]], Awaitable[None] | None]
"""A sync or async callable receiving a :class:`Change`."""


@final
@dataclass(frozen=True, slots=True)
class ObservableStats:
    """A snapshot of an :class:`Observable`'s counters, from ``stats()``.

    Attributes:
        observers: Observers registered at the time of the snapshot.
        notifications: Changes delivered (each counted once, however many observers got it;
            a change notified with no observer registered is not counted).
        failures: Observer calls that raised (logged; the other observers still ran).
    """

    observers: int
    notifications: int
    failures: int


class Observable(Generic[T]):
    """Notifies observers (sync or async callables) of :class:`Change` objects.

    Observers run one after another in registration order; one that raises is logged
    (logger ``mtaio.data``) and counted, and the others still run. Designed for
    subclassing: call ``super().__init__()`` or not, the state is created on first use.

    Example:
        >>> import asyncio
        >>> obs = Observable[int]()
        >>> @obs.on_change
        ... def show(change):
        ...     print(change.type.name, change.value)
        >>> asyncio.run(obs.notify(Change(ChangeType.ADD, 1)))
        ADD 1

    .. versionadded:: 0.1
    """

    _observers: list[tuple[Observer[T], bool, bool]] | None = None
    _pending: list[Change[T]] | None = None
    _depth: int = 0
    _notified: int = 0
    _failures: int = 0

    def __init__(self) -> None:
        self._observers = []

    def _list(self) -> list[tuple[Observer[T], bool, bool]]:
        observers = self._observers
        if observers is None:
            observers = self._observers = []
        return observers

    def add_observer(self, observer: Observer[T], *, once: bool = False) -> None:
        """Register ``observer``; with ``once=True`` it is removed after its first call.

        Raises:
            ConfigurationTypeError: If ``observer`` is not callable.
        """
        require_callable("observer", observer)
        self._list().append((observer, is_async_callable(observer), once))

    def remove_observer(self, observer: Observer[T]) -> bool:
        """Unregister ``observer``; returns whether it was registered."""
        observers = self._list()
        for i, (registered, _, _) in enumerate(observers):
            if registered == observer:
                del observers[i]
                return True
        return False

    def on_change(self, observer: Callable[[Change[T]], Any]) -> Callable[[Change[T]], Any]:
        """Decorator form of :meth:`add_observer`; returns the function unchanged."""
        self.add_observer(observer)
        return observer

    def once(self, observer: Callable[[Change[T]], Any]) -> Callable[[Change[T]], Any]:
        """Decorator: register ``observer`` for the next notification only."""
        self.add_observer(observer, once=True)
        return observer

    @property
    def observer_count(self) -> int:
        """How many observers are registered."""
        return len(self._list())

    def stats(self) -> ObservableStats:
        """Return a snapshot of the counters (see :class:`ObservableStats`)."""
        return ObservableStats(
            observers=len(self._list()), notifications=self._notified, failures=self._failures
        )

    def __repr__(self) -> str:
        stats = self.stats()
        batching = " batching" if self._depth else ""
        return (
            f"<{type(self).__name__} observers={stats.observers} "
            f"notifications={stats.notifications} failures={stats.failures}{batching}>"
        )

    async def notify(self, change: Change[T]) -> None:
        """Deliver ``change`` to every observer (or hold it, inside :meth:`batch_operations`)."""
        if self._depth:
            pending = self._pending
            if pending is None:
                pending = self._pending = []
            pending.append(change)
            return
        await self._deliver(change)

    async def _deliver(self, change: Change[Any]) -> None:
        observers = self._list()
        if not observers:
            return
        self._notified += 1
        # Iterate over a copy: observers may (un)register observers while being called.
        for entry in tuple(observers):
            observer, is_async, once = entry
            if once:
                try:
                    observers.remove(entry)
                except ValueError:
                    continue  # a concurrent notification already delivered it
            try:
                result = observer(change)
                if is_async or asyncio.iscoroutine(result):
                    await result  # type: ignore[misc]
            except Exception:
                self._failures += 1
                logger.exception("observer %r failed on %r", observer, change)

    @asynccontextmanager
    async def batch_operations(self) -> AsyncIterator[None]:
        """Hold notifications made inside the block; deliver them afterwards as one ``BATCH``.

        Blocks nest: delivery happens when the outermost one exits, also when it exits with
        an error (the changes did happen). A single held change is delivered as itself.
        """
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending:
                changes, self._pending = self._pending, None
                if len(changes) == 1:
                    await self._deliver(changes[0])
                else:
                    await self._deliver(Change(ChangeType.BATCH, tuple(changes)))


@final
class ObservableValue(Observable[T]):
    """A value whose changes are observable, and async-iterable as a stream of changes.

    Args:
        value: The initial value.
        maxsize: Per ``async for`` subscriber, how many changes may wait unread (0: no
            limit); when full, the oldest waiting change is dropped.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     counter = ObservableValue(0)
        ...     await counter.set(1)
        ...     return counter.value
        >>> asyncio.run(main())
        1

    .. versionadded:: 0.1
    """

    __slots__ = ("_maxsize", "_subscribers", "_value")

    def __init__(self, value: T, *, maxsize: int = 0) -> None:
        super().__init__()
        self._value = value
        self._maxsize = require_non_negative_int("maxsize", maxsize)
        self._subscribers: list[asyncio.Queue[Change[T]]] = []

    @property
    def value(self) -> T:
        """The current value."""
        return self._value

    async def set(self, value: T, *, force: bool = False) -> None:
        """Set the value and notify an ``UPDATE`` (skipped when equal, unless ``force``)."""
        old = self._value
        if not force and old == value:
            return
        self._value = value
        await self.notify(Change(ChangeType.UPDATE, value, old))

    async def _deliver(self, change: Change[Any]) -> None:
        for queue in self._subscribers:
            if self._maxsize and queue.full():
                queue.get_nowait()
            queue.put_nowait(change)
        await super()._deliver(change)

    def __aiter__(self) -> Subscription[T]:
        return self.changes()

    def changes(self) -> Subscription[T]:
        """Subscribe to every change from now on: an endless async iterator.

        The subscription starts at this call (not at the first ``async for`` step); end it
        with ``aclose()`` or by using it as an async context manager.
        """
        queue: asyncio.Queue[Change[T]] = asyncio.Queue(self._maxsize)
        self._subscribers.append(queue)
        return Subscription(self._subscribers, queue)

    def __repr__(self) -> str:
        return f"ObservableValue({self._value!r})"


@final
class Subscription(Generic[T]):
    """The changes of an :class:`ObservableValue`, as an async iterator (see ``changes()``).

    .. versionadded:: 0.1
    """

    __slots__ = ("_queue", "_subscribers")

    def __init__(
        self, subscribers: list[asyncio.Queue[Change[T]]], queue: asyncio.Queue[Change[T]]
    ) -> None:
        self._subscribers = subscribers
        self._queue = queue

    @property
    def closed(self) -> bool:
        """Whether the subscription was closed."""
        return self._queue not in self._subscribers

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> Change[T]:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        return await self._queue.get()

    async def aclose(self) -> None:
        """Stop receiving changes."""
        if not self.closed:
            self._subscribers.remove(self._queue)

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
