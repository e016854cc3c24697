"""Stages: the steps of a :class:`~mtaio.data.Pipeline`, and their counters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast, final, overload

from mtaio.exceptions import ConfigurationTypeError, require_callable, require_positive_int
from mtaio.typing import call_maybe_async, is_async_callable

from ._policies import OnError, _check_policy

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")
# A stage consumes its input and produces its output: a Stage[object, bool] fits wherever a
# Stage[int, int | bool] is expected (Pipeline.add_stage checks the chain with these).
In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)

# -- stats -----------------------------------------------------------------------------


@final
@dataclass(slots=True)
class _Counters:
    items_in: int = 0
    items_out: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0


@final
@dataclass(frozen=True, slots=True)
class StageStats:
    """A snapshot of one stage's counters.

    Attributes:
        name: The stage's name.
        items_in: Items given to the stage (retries not counted twice).
        items_out: Items the stage passed on.
        failed: Items on which the stage finally failed (raised, skipped or dead-lettered).
        retried: Retries made.
        skipped: Failed items skipped by the ``"skip"`` policy.
        dead_lettered: Failed items handed to a :class:`DeadLetter` callback.
        seconds: Time spent inside the stage, in seconds.

    .. versionadded:: 0.1
    """

    name: str
    items_in: int = 0
    items_out: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    seconds: float = field(default=0.0)


# -- stages ----------------------------------------------------------------------------


class Stage(ABC, Generic[In_contra, Out_co]):
    """One step of a :class:`Pipeline`: subclass it and write ``async def process(item)``.

    ``process`` returns the output, ``None`` when nothing is passed on for this item (a
    filter, or a batcher still filling up), or an async iterator (an async generator
    method works) to pass on several outputs for one input.

    A subclass need not call ``super().__init__()``: the name, error policy, concurrency
    and counters then take their class-level defaults.

    Args:
        name: The name used in errors and stats; defaults to the class name.
        on_error: The error policy (see :data:`OnError`); ``"raise"`` by default.
        concurrency: How many items ``stream``/``process_many`` may give this stage at once
            (output order is kept). Only for stages without per-item state.

    Raises:
        ConfigurationError: For a bad ``on_error`` or ``concurrency``.

    .. versionadded:: 0.1
    """

    _name: str | None = None
    _counters: _Counters | None = None
    on_error: OnError = "raise"
    concurrency: int = 1

    def __init__(
        self, *, name: str | None = None, on_error: OnError = "raise", concurrency: int = 1
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise ConfigurationTypeError(f"name must be a string, got {name!r}")
        _check_policy(on_error, "on_error")
        self._name = name
        self.on_error = on_error
        self.concurrency = require_positive_int("concurrency", concurrency)

    @property
    def name(self) -> str:
        """The stage's name (the class name unless one was given)."""
        return self._name or type(self).__name__

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def _stats(self) -> _Counters:
        counters = self._counters
        if counters is None:
            counters = self._counters = _Counters()
        return counters

    def stats(self) -> StageStats:
        """A snapshot of this stage's counters."""
        c = self._stats()
        return StageStats(
            self.name,
            c.items_in,
            c.items_out,
            c.failed,
            c.retried,
            c.skipped,
            c.dead_lettered,
            c.seconds,
        )

    @abstractmethod
    def process(
        self, item: In_contra
    ) -> Awaitable[Out_co | AsyncIterator[Out_co] | None] | AsyncIterator[Out_co]:
        """Process one item.

        Args:
            item: The input.

        Returns:
            The output, ``None`` to pass nothing on, or an async iterator of outputs.
        """

    async def flush(self) -> Out_co | AsyncIterator[Out_co] | None:
        """Called when the input ends: return what is still held back (``None`` by default)."""
        return None

    async def setup(self) -> None:
        """Prepare the stage; run when the pipeline's context is first entered."""

    async def cleanup(self) -> None:
        """Release what ``setup`` took; run after the pipeline's context is last exited."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _callable_name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


@final
class MapStage(Stage[In, Out]):
    """A stage applying ``fn`` (sync or async) to every item.

    Args:
        fn: The function of one item.
        name: Defaults to ``map(<fn name>)``.
        on_error: The error policy.
        concurrency: Items processed at once in ``stream``/``process_many``.

    Raises:
        ConfigurationTypeError: If ``fn`` is not callable.

    .. versionadded:: 0.1
    """

    __slots__ = ("_fn", "_is_async")

    @overload
    def __init__(
        self: MapStage[In, Out],
        fn: Callable[[In], Awaitable[Out]],
        *,
        name: str | None = None,
        on_error: OnError = "raise",
        concurrency: int = 1,
    ) -> None: ...
    @overload
    def __init__(
        self: MapStage[In, Out],
        fn: Callable[[In], Out],
        *,
        name: str | None = None,
        on_error: OnError = "raise",
        concurrency: int = 1,
    ) -> None: ...
    def __init__(
        self,
        fn: Callable[[In], Any],
        *,
        name: str | None = None,
        on_error: OnError = "raise",
        concurrency: int = 1,
    ) -> None:
        require_callable("fn", fn)
        super().__init__(
            name=name or f"map({_callable_name(fn)})", on_error=on_error, concurrency=concurrency
        )
        self._fn = fn
        self._is_async = is_async_callable(fn)

    async def process(self, item: In) -> Out:
        """Return ``fn(item)``, awaited if ``fn`` is async."""
        if self._is_async:
            return await cast("Callable[[In], Awaitable[Out]]", self._fn)(item)
        return cast("Callable[[In], Out]", self._fn)(item)


@final
class FilterStage(Stage[T, T]):
    """A stage passing on the items for which ``predicate`` (sync or async) is true.

    Args:
        predicate: The test of one item.
        name: Defaults to ``filter(<predicate name>)``.
        on_error: The error policy.
        concurrency: Items tested at once in ``stream``/``process_many``.

    Raises:
        ConfigurationTypeError: If ``predicate`` is not callable.

    .. versionadded:: 0.1
    """

    __slots__ = ("_fn", "_is_async")

    def __init__(
        self,
        predicate: Callable[[T], Any],
        *,
        name: str | None = None,
        on_error: OnError = "raise",
        concurrency: int = 1,
    ) -> None:
        require_callable("predicate", predicate)
        super().__init__(
            name=name or f"filter({_callable_name(predicate)})",
            on_error=on_error,
            concurrency=concurrency,
        )
        self._fn = predicate
        self._is_async = is_async_callable(predicate)

    async def process(self, item: T) -> T | None:
        """Return ``item`` if the predicate holds, else ``None``."""
        ok = self._fn(item)
        if self._is_async:
            ok = await ok
        return item if ok else None


class BatchStage(Stage[T, Out]):
    """A stage gathering items into lists of ``batch_size`` and passing on ``process_batch(batch)``.

    The last partial batch is processed when the input ends (:meth:`flush`). Override
    :meth:`process_batch` or pass ``process_batch=``; by default the batch itself is passed on.

    Args:
        batch_size: Items per batch.
        process_batch: A sync or async function of the batch (a list).
        name: Defaults to the class name.
        on_error: The error policy (a retried batch is processed again as a whole).

    Raises:
        ConfigurationError: If ``batch_size`` is not a positive integer.
        ConfigurationTypeError: If ``process_batch`` is not callable.

    .. versionadded:: 0.1
    """

    @overload
    def __init__(
        self: BatchStage[T, list[T]],
        batch_size: int,
        process_batch: None = None,
        *,
        name: str | None = None,
        on_error: OnError = "raise",
    ) -> None: ...
    @overload
    def __init__(
        self: BatchStage[T, Out],
        batch_size: int,
        process_batch: Callable[[list[T]], Awaitable[Out]],
        *,
        name: str | None = None,
        on_error: OnError = "raise",
    ) -> None: ...
    @overload
    def __init__(
        self: BatchStage[T, Out],
        batch_size: int,
        process_batch: Callable[[list[T]], Out],
        *,
        name: str | None = None,
        on_error: OnError = "raise",
    ) -> None: ...
    def __init__(
        self,
        batch_size: int,
        process_batch: Callable[[list[T]], Any] | None = None,
        *,
        name: str | None = None,
        on_error: OnError = "raise",
    ) -> None:
        super().__init__(name=name, on_error=on_error)
        self.batch_size = require_positive_int("batch_size", batch_size)
        if process_batch is not None:
            require_callable("process_batch", process_batch)
        self._fn = process_batch
        self._batch: list[T] = []

    async def process_batch(self, batch: list[T]) -> Out:
        """Turn one batch into the output passed on; returns the batch by default."""
        if self._fn is None:
            return cast("Out", batch)
        return cast("Out", await call_maybe_async(self._fn, batch))

    async def process(self, item: T) -> Out | None:
        """Add ``item``; when the batch is full, return ``process_batch(batch)``."""
        batch = self._batch
        batch.append(item)
        if len(batch) < self.batch_size:
            return None
        self._batch = []
        return await self.process_batch(batch)

    async def flush(self) -> Out | None:
        """Process and return the partial batch, if any."""
        if not self._batch:
            return None
        batch, self._batch = self._batch, []
        return await self.process_batch(batch)
