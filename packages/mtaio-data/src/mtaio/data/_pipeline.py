"""Pipeline: stages chained, with error policies, backpressure and two engines.

Two engines run a pipeline. Without buffers and concurrency (the default) every item goes
depth-first through the stages in the caller's task: no task, no queue, one await per stage.
With ``buffer_size > 0`` or a stage with ``concurrency > 1``, ``stream``/``process_many``
chain one async generator per stage, each stage read ahead by its own task through a bounded
buffer: the stages overlap in time and a slow stage blocks the ones before it (backpressure).
"""

from __future__ import annotations

import asyncio
import logging
import reprlib
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Iterable,
)
from contextlib import aclosing
from types import CoroutineType, TracebackType
from typing import Any, Final, Generic, NoReturn, Self, cast, final

from typing_extensions import TypeVar  # a TypeVar default (PEP 696) on Python 3.11

from mtaio.exceptions import (
    ConfigurationTypeError,
    PipelineError,
    StageError,
    require_non_negative_int,
    require_positive_int,
)
from mtaio.typing import call_maybe_async

from ._aio import Failures, aclose, buffered, ordered_map
from ._errors import PipelineErrorGroup
from ._policies import DeadLetter, OnError, Retry, _check_policy
from ._stages import Stage, StageStats

In = TypeVar("In")
Out = TypeVar("Out")
# The output type of the stages added so far. A new pipeline starts at ``In`` (see
# __init__'s self type) and every add_stage moves it on, so a chain is checked stage by
# stage. In an annotation it defaults to Any: ``p: Pipeline[dict, str] = Pipeline()`` then
# ``p.add_stage(...)`` in place (the static type cannot follow a mutation) stays accepted.
Tail = TypeVar("Tail", default=Any)
New = TypeVar("New")

logger = logging.getLogger("mtaio.data")

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


# -- pipeline --------------------------------------------------------------------------


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


_DROP: Final = _Drop()


class _Many:
    """Several outputs for one input (a fan-out stage), distinct from an output that is a list."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


_FAN_OUT: dict[type, bool] = {}


def _fans_out(tp: type) -> bool:
    """Whether results of type ``tp`` are async iterators (cached: hasattr is slow on a miss)."""
    known = _FAN_OUT.get(tp)
    if known is None:
        known = _FAN_OUT[tp] = hasattr(tp, "__anext__")
    return known


async def _settle(result: Any) -> Any:
    """Await a stage result if needed and classify it: a value, ``_DROP`` or ``_Many``."""
    if type(result) is CoroutineType or hasattr(result, "__await__"):
        result = await result
    if result is None:
        return _DROP
    if _fans_out(type(result)):
        # A failed attempt's outputs must not leak out, so a fan-out is read completely
        # inside the stage's guarded region.
        async with aclosing(result) if hasattr(result, "aclose") else _null():
            return _Many([x async for x in result])
    return result


class _null:  # an async stand-in for contextlib.nullcontext
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _grouped(error: Exception) -> PipelineErrorGroup:
    """The one report of a pipeline call's failures, from a StageError or several of them.

    The group holds the original exceptions (so ``except* ValueError`` works), each with a
    note naming the stage and the item; it describes the first failure as a StageError.
    """
    if isinstance(error, PipelineErrorGroup):
        return error
    stage_errors = error.errors if isinstance(error, Failures) else [error]
    originals: list[Exception] = []
    for each in stage_errors:
        cause = each.__cause__ if isinstance(each, StageError) else None
        if not isinstance(cause, Exception):
            originals.append(each)  # not a stage failure (a DeadLetter callback raised)
            continue
        stage_name = each.stage if isinstance(each, StageError) else None
        item = each.item if isinstance(each, StageError) else None
        cause.add_note(f"mtaio.data: in stage {stage_name!r}, item {_repr.repr(item)}")
        originals.append(cause)
    first = stage_errors[0]
    message = str(first)
    if len(originals) > 1:
        message = f"{len(originals)} items failed in the pipeline; the first: {message}"
    return PipelineErrorGroup(
        message,
        originals,
        first.stage if isinstance(first, StageError) else None,
        first.item if isinstance(first, StageError) else None,
    )


def _raise_grouped(error: Exception) -> NoReturn:
    group = _grouped(error)
    if group is error:
        raise group
    raise group from group.exceptions[0]


def _stage_error(stage: Stage[Any, Any], item: object, exc: Exception) -> StageError:
    error = StageError(
        f"stage {stage.name!r} failed on item {_repr.repr(item)}: {type(exc).__name__}: {exc}",
        stage=stage.name,
        item=item,
    )
    error.__cause__ = exc
    return error


class _Slot:
    """A stage in a pipeline, with the policy and concurrency it runs under there."""

    __slots__ = ("call", "concurrency", "counters", "policy", "stage")

    def __init__(self, stage: Stage[Any, Any], policy: OnError, concurrency: int) -> None:
        self.stage = stage
        self.call = stage.process  # bound once: one attribute lookup less per item
        self.policy = policy
        self.concurrency = concurrency
        self.counters = stage._stats()

    async def apply(self, item: Any) -> Any:
        """Run the stage on one item: a value, ``_DROP`` or ``_Many`` (see Pipeline._run)."""
        counters = self.counters
        counters.items_in += 1
        start = time.perf_counter()
        try:
            result = await _settle(self.call(item))
        except Exception as exc:
            result = await self.failed(item, exc)
        counters.seconds += time.perf_counter() - start
        if result is not _DROP:
            counters.items_out += len(result.items) if type(result) is _Many else 1
        return result

    async def flush(self) -> Any:
        counters = self.counters
        start = time.perf_counter()
        try:
            result = await _settle(self.stage.flush())
        except Exception as exc:
            counters.failed += 1
            raise _stage_error(self.stage, None, exc) from exc
        finally:
            counters.seconds += time.perf_counter() - start
        if result is not _DROP:
            counters.items_out += len(result.items) if type(result) is _Many else 1
        return result

    async def failed(self, item: Any, exc: Exception) -> Any:
        policy = self.policy
        if isinstance(policy, Retry):
            for retry in range(policy.attempts - 1):
                if not isinstance(exc, policy.retry_on):
                    break
                await asyncio.sleep(policy.wait(retry))
                self.counters.retried += 1
                try:
                    return await _settle(self.call(item))
                except Exception as again:
                    exc = again
            policy = policy.then
        self.counters.failed += 1
        if policy == "skip":
            self.counters.skipped += 1
            logger.debug("stage %r skipped item %s: %r", self.stage.name, _repr.repr(item), exc)
            return _DROP
        if isinstance(policy, DeadLetter):
            self.counters.dead_lettered += 1
            await call_maybe_async(policy.callback, item, exc)
            return _DROP
        raise _stage_error(self.stage, item, exc) from exc


@final
class Pipeline(Generic[In, Out, Tail]):
    """A chain of :class:`Stage` objects that items flow through.

    ``async with pipeline:`` runs every stage's ``setup()`` on the first entry and
    ``cleanup()`` after the last exit; it may be entered by several tasks at once, and
    cleanup runs on error and on cancellation too. ``process`` also works outside it.

    Errors: under the default ``"raise"`` policy a failing stage makes the call raise a
    :class:`PipelineErrorGroup`: an exception group of every item that failed (one for
    ``process``; with concurrent stages, every one that had failed when the pipeline
    stopped), each original exception noted with its stage and item, so ``except*`` works.
    The group is also a :class:`~mtaio.exceptions.StageError` whose ``stage``, ``item``
    and ``__cause__`` describe the first failure.

    Args:
        buffer_size: 0 (default) runs items through the stages one at a time in the
            caller's task. A positive size makes ``stream``/``process_many`` run every stage
            in its own task, joined by buffers: a stage's reader pauses while
            ``buffer_size`` items wait for it (at most twice that many are held per join).
        stages: Stages to add right away.

    Raises:
        ConfigurationError: If ``buffer_size`` is negative.

    Example:
        >>> import asyncio
        >>> p = Pipeline[int, int]().add_stage(MapStage(lambda x: x + 1))
        >>> asyncio.run(p.process_many(range(3)))
        [1, 2, 3]

    .. versionadded:: 0.1
    """

    __slots__ = ("_buffer_size", "_lock", "_ready", "_slots", "_users")

    def __init__(
        self: Pipeline[In, Out, In],
        buffer_size: int = 0,
        *,
        stages: Iterable[Stage[Any, Any]] = (),
    ) -> None:
        self._buffer_size = require_non_negative_int("buffer_size", buffer_size)
        self._slots: list[_Slot] = []
        self._users = 0
        self._ready = False
        self._lock = asyncio.Lock()
        for stage in stages:
            self.add_stage(stage)

    @property
    def buffer_size(self) -> int:
        """The buffer size between stages (0: stages run in the caller's task, no buffers)."""
        return self._buffer_size

    @property
    def stages(self) -> tuple[Stage[Any, Any], ...]:
        """The stages, in order."""
        return tuple(slot.stage for slot in self._slots)

    def add_stage(
        self,
        stage: Stage[Tail, New],
        *,
        on_error: OnError | None = None,
        concurrency: int | None = None,
    ) -> Pipeline[In, Out, New]:
        """Append ``stage``; returns the pipeline, so calls chain.

        Typed: in a chain that starts from ``Pipeline[In, Out]()``, each stage must accept
        what the previous stage passes on (``In`` for the first one), and the result's third
        type parameter is the stage's output: ``Pipeline[str, int]().add_stage(Parse())``
        (``Parse`` a ``Stage[str, int]``) is a ``Pipeline[str, int, int]``, and adding a
        ``Stage[int, int]`` first is a type error. The entry points return the declared
        ``Out``.

        Args:
            stage: The stage.
            on_error: The policy here, overriding the stage's own ``on_error``.
            concurrency: Overrides the stage's own ``concurrency``.

        Raises:
            ConfigurationTypeError: If ``stage`` is not a :class:`Stage`.
            ConfigurationError: For a bad ``on_error`` or ``concurrency``.
        """
        if not isinstance(stage, Stage):
            raise ConfigurationTypeError(
                f"stage must be a mtaio.data.Stage instance, got {stage!r}"
            )
        policy = stage.on_error if on_error is None else on_error
        _check_policy(policy, "on_error")
        concurrency = stage.concurrency if concurrency is None else concurrency
        require_positive_int("concurrency", concurrency)
        self._slots.append(_Slot(stage, policy, concurrency))
        return cast("Pipeline[In, Out, New]", self)

    def __repr__(self) -> str:
        stages = " -> ".join(
            slot.stage.name if slot.concurrency == 1 else f"{slot.stage.name} x{slot.concurrency}"
            for slot in self._slots
        )
        state = f" entered={self._users}" if self._users else ""
        return f"<Pipeline [{stages}] buffer_size={self._buffer_size}{state}>"

    def stats(self) -> list[StageStats]:
        """Every stage's counters, in stage order."""
        return [slot.stage.stats() for slot in self._slots]

    # -- context ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._users += 1
        try:
            async with self._lock:
                if not self._ready:
                    await self._setup()
                    self._ready = True
        except BaseException:
            self._users -= 1
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._users -= 1
        if self._users:
            return
        async with self._lock:
            # Someone may have entered (and set up again) while we waited for the lock.
            if self._idle():
                self._ready = False
                await self._cleanup([slot.stage for slot in self._slots], exc is None)

    def _idle(self) -> bool:
        return self._users == 0 and self._ready

    async def _setup(self) -> None:
        done: list[Stage[Any, Any]] = []
        try:
            for slot in self._slots:
                await slot.stage.setup()
                done.append(slot.stage)
        except BaseException:
            await self._cleanup(done, raise_errors=False)
            raise

    async def _cleanup(self, stages: list[Stage[Any, Any]], raise_errors: bool) -> None:
        # Every stage gets its cleanup, in reverse order, even if an earlier one fails or
        # the task is cancelled meanwhile; the cancellation is re-raised afterwards.
        errors: list[tuple[str, Exception]] = []
        cancelled: asyncio.CancelledError | None = None
        for stage in reversed(stages):
            try:
                await stage.cleanup()
            except asyncio.CancelledError as exc:
                cancelled = exc
            except Exception as exc:
                logger.exception("cleanup of stage %r failed", stage.name)
                errors.append((stage.name, exc))
        if cancelled is not None:
            raise cancelled
        if errors and raise_errors:
            names = ", ".join(repr(name) for name, _ in errors)
            for name, failure in errors:
                failure.add_note(f"mtaio.data: in the cleanup of stage {name!r}")
            group = PipelineErrorGroup(
                f"cleanup of {len(errors)} stage(s) failed: {names}",
                [failure for _, failure in errors],
                errors[0][0],
            )
            raise group from errors[0][1]

    # -- processing ------------------------------------------------------------------

    async def process(self, item: In) -> Out | None:
        """Run one item through every stage.

        Returns:
            The final output, or ``None`` when a stage passed nothing on.

        Raises:
            PipelineErrorGroup: When a stage fails under the ``"raise"`` policy (also a
                ``StageError``).
            PipelineError: When fan-out stages produced several outputs for this item (use
                :meth:`process_all`).
        """
        out: list[Any] = []
        try:
            await self._run(0, item, out)
        except StageError as error:
            _raise_grouped(error)
        if not out:
            return None
        if len(out) > 1:
            raise PipelineError(
                f"item {_repr.repr(item)} produced {len(out)} outputs; "
                "use process_all() or stream() with fan-out stages"
            )
        return cast("Out", out[0])

    async def process_all(self, item: In) -> list[Out]:
        """Run one item through every stage and return all its outputs (fan-out stages)."""
        out: list[Any] = []
        try:
            await self._run(0, item, out)
        except StageError as error:
            _raise_grouped(error)
        return out

    async def flush(self) -> list[Out]:
        """Call every stage's ``flush`` in order, running what they release through the rest.

        ``process_many`` and ``stream`` do this when their input ends; call it yourself
        after feeding items one by one with :meth:`process`.
        """
        out: list[Any] = []
        try:
            await self._flush_from(0, out)
        except StageError as error:
            _raise_grouped(error)
        return out

    async def process_many(self, items: Iterable[In] | AsyncIterable[In]) -> list[Out]:
        """Run every item through the pipeline and return all outputs (``None`` results dropped)."""
        try:
            if self._buffer_size or any(slot.concurrency > 1 for slot in self._slots):
                async with aclosing(self.stream(items)) as results:
                    return [x async for x in results]
            _check_items(items)
            out: list[Any] = []
            run = self._run
            if hasattr(items, "__aiter__"):
                it = cast("AsyncIterable[In]", items).__aiter__()
                try:
                    async for item in it:
                        await run(0, item, out)
                finally:
                    await aclose(it)
            else:
                for item in items:
                    await run(0, item, out)
            await self._flush_from(0, out)
            return out
        except (StageError, Failures) as error:
            _raise_grouped(error)

    async def stream(self, items: Iterable[In] | AsyncIterable[In]) -> AsyncGenerator[Out, None]:
        """Yield outputs as they come; stages are flushed when ``items`` ends.

        Closing the generator early stops the stages and closes ``items`` if it is an async
        generator.

        Raises:
            ConfigurationTypeError: If ``items`` is not iterable.
        """
        _check_items(items)
        try:
            if self._buffer_size or any(slot.concurrency > 1 for slot in self._slots):
                gen = self._concurrent(items)
                try:
                    async for each in gen:
                        yield each
                finally:
                    await gen.aclose()
                return
            out: list[Any] = []
            push = self._run
            if hasattr(items, "__aiter__"):
                it = cast("AsyncIterable[In]", items).__aiter__()
                try:
                    async for item in it:
                        await push(0, item, out)
                        if out:
                            for each in out:
                                yield each
                            out.clear()
                finally:
                    await aclose(it)
            else:
                for item in items:
                    await push(0, item, out)
                    if out:
                        for each in out:
                            yield each
                        out.clear()
            await self._flush_from(0, out)
            for each in out:
                yield each
        except (StageError, Failures) as error:
            _raise_grouped(error)

    async def _run(self, index: int, item: Any, out: list[Any]) -> None:
        # The sequential engine's hot loop, the body of _Slot.apply inlined: per stage one
        # call, one await and one clock reading (each stage's time runs to the next reading).
        slots = self._slots
        count = len(slots)
        clock = time.perf_counter
        fan_out = _FAN_OUT.get
        start = clock()
        while index < count:
            slot = slots[index]
            counters = slot.counters
            counters.items_in += 1
            try:
                result = slot.call(item)
                if type(result) is CoroutineType:
                    result = await result
                    if result is not None and fan_out(type(result)) is not False:
                        result = await _settle(result)
                elif result is not None:
                    result = await _settle(result)
            except Exception as exc:
                result = await slot.failed(item, exc)
            now = clock()
            counters.seconds += now - start
            start = now
            if result is None or result is _DROP:
                return
            if type(result) is _Many:
                counters.items_out += len(result.items)
                for each in result.items:
                    await self._run(index + 1, each, out)
                return
            counters.items_out += 1
            item = result
            index += 1
        out.append(item)

    async def _flush_from(self, index: int, out: list[Any]) -> None:
        slots = self._slots
        for i in range(index, len(slots)):
            result = await slots[i].flush()
            if result is _DROP:
                continue
            for each in result.items if type(result) is _Many else (result,):
                await self._run(i + 1, each, out)

    async def _concurrent(
        self, items: Iterable[Any] | AsyncIterable[Any]
    ) -> AsyncGenerator[Any, None]:
        size = self._buffer_size
        gen: AsyncIterator[Any] = _source(items)
        if size:
            gen = buffered(gen, size)
        for slot in self._slots:
            gen = _run_slot(slot, gen, size)
            if size:
                gen = buffered(gen, size)
        try:
            async for each in gen:
                yield each
        finally:
            await aclose(gen)


def _check_items(items: object) -> None:
    if not (hasattr(items, "__aiter__") or hasattr(items, "__iter__")):
        raise ConfigurationTypeError(f"items must be an iterable or async iterable, got {items!r}")


async def _source(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if hasattr(items, "__aiter__"):
        it = cast("AsyncIterable[Any]", items).__aiter__()
        try:
            async for item in it:
                yield item
        finally:
            await aclose(it)
    else:
        for item in items:
            yield item


async def _run_slot(slot: _Slot, up: AsyncIterator[Any], buffer_size: int) -> AsyncIterator[Any]:
    """One stage as an async generator over its upstream (the concurrent engine)."""
    if slot.concurrency > 1:
        up = ordered_map(
            up, slot.apply, slot.concurrency, slot.concurrency + buffer_size, collect=True
        )
        try:
            async for result in up:
                if result is _DROP:
                    continue
                if type(result) is _Many:
                    for each in result.items:
                        yield each
                else:
                    yield result
        finally:
            await aclose(up)
    else:
        # _Slot.apply inlined (as in Pipeline._run): one generator frame per stage and item.
        call = slot.call
        counters = slot.counters
        clock = time.perf_counter
        fan_out = _FAN_OUT.get
        try:
            async for item in up:
                counters.items_in += 1
                start = clock()
                try:
                    result = call(item)
                    if type(result) is CoroutineType:
                        result = await result
                        if result is not None and fan_out(type(result)) is not False:
                            result = await _settle(result)
                    elif result is not None:
                        result = await _settle(result)
                except Exception as exc:
                    result = await slot.failed(item, exc)
                counters.seconds += clock() - start
                if result is None or result is _DROP:
                    continue
                if type(result) is _Many:
                    counters.items_out += len(result.items)
                    for each in result.items:
                        yield each
                    continue
                counters.items_out += 1
                yield result
        finally:
            await aclose(up)
    result = await slot.flush()
    if result is not _DROP:
        for each in result.items if type(result) is _Many else (result,):
            yield each
