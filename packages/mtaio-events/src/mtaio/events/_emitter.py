"""The event emitter: priorities, wildcards, operators, batching.

Speed notes (the hot path is :meth:`EventEmitter.emit` with no links and no batch):

* Each name emitted gets a *plan*, the tuple of its listeners (exact name plus every
  matching pattern) in delivery order, cached in a dict. Emitting is one dict lookup plus
  the handler calls, whatever the number of other names; registering or removing a
  listener drops the cached plans it can affect (its own name, or all for a pattern).
* Handlers are awaited in turn on the emitting task: no task per handler and no lock, so a
  handler can emit on its own emitter (re-entrancy) and independent emits interleave freely.
* Plans are immutable tuples: a listener added or removed while an emit is running affects
  the next emit, never the one in progress.
* A plan made only of plain async handlers also goes into a fast table: ``_fast1`` when it
  is a single handler (the commonest case: no loop, one counter), ``_fast`` otherwise. Both
  build a :class:`BareEvent` (no ``__init__`` call, metadata left unset until read); the
  event each handler receives is the one cost a raw dict-of-lists emitter does not have.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypeVar, final, overload

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    EventHandlerError,
    TimeoutError,
    require_callable,
    require_choice,
    require_positive,
    require_positive_int,
)
from mtaio.typing import is_async_callable

from ._event import (
    BareEvent,
    Event,
    EventPriority,
    check_event_name,
    check_name,
    compile_pattern,
    copy_metadata,
    is_pattern,
)

__all__ = ("EmitterStats", "ErrorPolicy", "EventEmitter", "Handler")

logger = logging.getLogger("mtaio.events")

Handler: TypeAlias = Callable[[Event[Any]], Any]
"""A handler: called with the :class:`Event`; sync or async; its result is collected."""
BatchHandler: TypeAlias = Callable[[list[Event[Any]]], Any]
ErrorPolicy: TypeAlias = Literal["auto", "raise", "log", "ignore"]
"""What happens when handlers fail; see :class:`EventEmitter`."""

# A handler must accept an Event: mypy refuses ``@on("n")`` over ``def f(x: int)``.
H = TypeVar("H", bound=Callable[[Event[Any]], Any])
HB = TypeVar("HB", bound=Callable[[list[Event[Any]]], Any])
F = TypeVar("F", bound=Callable[..., Any])

_MONITOR = EventPriority.MONITOR
_ERROR_POLICIES = ("auto", "raise", "log", "ignore")
_PLAN_CACHE_LIMIT = 4096  # names with a cached plan; beyond it the cache starts over
_seq = itertools.count()
_NOTHING: list[_Listener] = []  # never mutated


class _Listener:
    """One registration of a handler (per-registration object: slotted)."""

    __slots__ = ("batch", "fn", "handler", "is_async", "key", "priority", "remaining", "seq")

    def __init__(
        self,
        key: str,
        handler: Callable[..., Any],
        priority: int,
        remaining: int | None,
        batch: bool,
    ) -> None:
        self.key = key
        self.handler = handler
        self.priority = priority
        self.remaining = remaining
        self.batch = batch
        self.seq = next(_seq)
        self.is_async = is_async_callable(handler)
        if batch:
            # Outside a batch block a batch handler receives a one-event list.
            if self.is_async:

                async def one(event: Event[Any]) -> Any:
                    return await handler([event])

                self.fn: Callable[[Event[Any]], Any] = one
            else:
                self.fn = lambda event: handler([event])
        else:
            self.fn = handler


def _order(listener: _Listener) -> tuple[int, int]:
    return (-listener.priority, listener.seq)


@final
@dataclass(frozen=True, slots=True)
class EmitterStats:
    """Counters of an :class:`EventEmitter`.

    Attributes:
        emitted: Events dispatched by this emitter (emitted on it or received through a link).
        delivered: Handler calls made.
        failures: Handler calls that raised.
        listeners: Listeners registered now.
    """

    emitted: int
    delivered: int
    failures: int
    listeners: int


_Pending: TypeAlias = tuple[str, Any, "Mapping[str, Any] | None"]
# Per task (context): the batch block open on each emitter.
_BATCHES: contextvars.ContextVar[dict[EventEmitter, _BatchBlock] | None] = contextvars.ContextVar(
    "mtaio.events.batches", default=None
)


def _check_priority(priority: object) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ConfigurationTypeError(
            f"priority must be an EventPriority or an int from 0 to 100, got {priority!r}"
        )
    if priority != EventPriority.MONITOR and not 0 <= priority <= 100:
        raise ConfigurationError(
            f"priority must be an EventPriority or an int from 0 to 100, got {priority!r}"
        )
    return priority


@final
class EventEmitter:
    """An asyncio event emitter with priorities, wildcards, operators and batching.

    Handlers receive an :class:`Event` and may be sync or async. ``await emit(...)`` runs
    the handlers of the name, in priority order, on the calling task and returns when they
    are done. Names are exact (``"user.login"``), ``"*"`` for every event, or dotted glob
    patterns (``"user.*"``, ``"user.**"``).

    Example:
        >>> import asyncio
        >>> emitter = EventEmitter()
        >>> @emitter.on("greet")
        ... def hello(event):
        ...     print("hello", event.data)
        >>> asyncio.run(emitter.emit("greet", "world"))
        hello world

    Args:
        error_policy: What happens when handlers raise. A failing handler never stops the
            others; once they have run, ``"raise"`` raises :class:`EventHandlerError`
            carrying every failure, ``"log"`` logs each failure to ``mtaio.events``,
            ``"ignore"`` drops them, and ``"auto"`` (default) emits each failure as an
            ``"error"`` event (``data`` is the exception, ``metadata["event"]`` the event,
            ``metadata["handler"]`` the handler) when ``"error"`` listeners exist, and
            raises otherwise. Failures of ``"error"`` handlers themselves are always raised.
        name: A label shown in ``repr`` and logs.
    """

    __slots__ = (
        "__weakref__",
        "_batch_depth",
        "_delivered",
        "_emitted",
        "_error_policy",
        "_failures",
        "_fast",
        "_fast1",
        "_fast1_emits",
        "_index",
        "_links",
        "_name",
        "_operator",
        "_operator_async",
        "_operator_kind",
        "_patterns",
        "_plans",
        "_registry",
        "_slow",
    )

    def __init__(self, *, error_policy: ErrorPolicy = "auto", name: str | None = None) -> None:
        self._error_policy: ErrorPolicy = require_choice(
            "error_policy", error_policy, _ERROR_POLICIES
        )
        if name is not None:
            check_name("name", name)
        self._name = name
        # name -> its registrations (an insertion-ordered set), and name -> handler -> the
        # registrations of that handler: off() and once-removal are O(1).
        self._registry: dict[str, dict[_Listener, None]] = {}
        self._index: dict[str, dict[Callable[..., Any], list[_Listener]]] = {}
        self._patterns: dict[str, Callable[[str], bool]] = {}
        self._plans: dict[str, tuple[_Listener, ...]] = {}
        # The hot paths: name -> the handlers of a plan made only of plain async handlers,
        # in _fast1 when it is exactly one (the common case, with its own shorter path).
        self._fast: dict[str, tuple[Callable[[Event[Any]], Awaitable[Any]], ...]] = {}
        self._fast1: dict[str, Callable[[Event[Any]], Awaitable[Any]]] = {}
        self._fast1_emits = 0  # emits through _fast1: each is one event and one call
        self._links: list[EventEmitter] = []
        self._slow = False  # links or a batch block: emit takes the general path
        self._operator: Callable[[Event[Any]], Any] | None = None
        self._operator_kind: Literal["filter", "map"] | None = None
        self._operator_async = False
        self._batch_depth = 0
        self._emitted = 0
        self._delivered = 0
        self._failures = 0

    def __repr__(self) -> str:
        label = f" {self._name!r}" if self._name else ""
        return f"<EventEmitter{label} listeners={self.listener_count()} links={len(self._links)}>"

    # ------------------------------------------------------------------ registration

    @overload
    def on(self, name: str, handler: H, *, priority: int = ..., times: int | None = ...) -> H: ...

    @overload
    def on(
        self, name: str, handler: None = ..., *, priority: int = ..., times: int | None = ...
    ) -> Callable[[H], H]: ...

    def on(
        self,
        name: str,
        handler: H | None = None,
        *,
        priority: int = EventPriority.NORMAL,
        times: int | None = None,
    ) -> H | Callable[[H], H]:
        """Register a handler for ``name``: ``on(name, handler)`` or ``@on(name)``.

        The decorator form with a priority is ``@on(name, priority=EventPriority.HIGH)``.

        .. versionchanged:: 0.2
            A non-callable ``handler`` is refused; the priority no longer goes in the
            handler's place (``@on(name, EventPriority.HIGH)``).

        Args:
            name: An exact name, ``"*"`` or a dotted glob pattern.
            handler: A sync or async callable taking the :class:`Event`. Omit it to use
                ``on`` as a decorator.
            priority: An :class:`EventPriority` (or an int from 0 to 100).
            times: Fire at most this many times, then unregister (``None``: forever).

        Returns:
            The handler itself (or a decorator returning it), usable with :meth:`off`.

        Raises:
            ConfigurationError: On an empty name, a priority out of range or a non-positive
                ``times``.
            ConfigurationTypeError: On a non-callable handler (or arguments of wrong types).
        """
        return self._register(name, handler, priority, times, batch=False)

    @overload
    def once(self, name: str, handler: H, *, priority: int = ...) -> H: ...

    @overload
    def once(self, name: str, handler: None = ..., *, priority: int = ...) -> Callable[[H], H]: ...

    def once(
        self, name: str, handler: H | None = None, *, priority: int = EventPriority.NORMAL
    ) -> H | Callable[[H], H]:
        """Register a handler that fires once, then unregisters itself.

        Exactly once even under concurrent emits. See :meth:`on` for the arguments.
        """
        return self._register(name, handler, priority, 1, batch=False)

    @overload
    def many(self, name: str, times: int, handler: H, *, priority: int = ...) -> H: ...

    @overload
    def many(
        self, name: str, times: int, handler: None = ..., *, priority: int = ...
    ) -> Callable[[H], H]: ...

    def many(
        self,
        name: str,
        times: int,
        handler: H | None = None,
        *,
        priority: int = EventPriority.NORMAL,
    ) -> H | Callable[[H], H]:
        """Register a handler that fires ``times`` times, then unregisters itself.

        See :meth:`on` for the arguments; ``times`` is a positive int (``None`` is refused:
        use :meth:`on` for a handler that fires forever).
        """
        require_positive_int("times", times)
        return self._register(name, handler, priority, times, batch=False)

    @overload
    def on_batch(self, name: str, handler: HB, *, priority: int = ...) -> HB: ...

    @overload
    def on_batch(
        self, name: str, handler: None = ..., *, priority: int = ...
    ) -> Callable[[HB], HB]: ...

    def on_batch(
        self, name: str, handler: HB | None = None, *, priority: int = EventPriority.NORMAL
    ) -> HB | Callable[[HB], HB]:
        """Register a handler that receives events as a list.

        At the end of a :meth:`batch_operations` block the handler is called once with all
        of the block's events matching ``name``, in emission order; outside a block it is
        called with a one-event list per emit. See :meth:`on` for the arguments.
        """
        return self._register(name, handler, priority, None, batch=True)

    def _register(
        self,
        name: str,
        handler: F | None,
        priority: int,
        times: int | None,
        *,
        batch: bool,
    ) -> F | Callable[[F], F]:
        check_name("name", name)
        _check_priority(priority)
        if times is not None:
            require_positive_int("times", times)
        if handler is None:

            def decorator(fn: F) -> F:
                self._add(name, fn, priority, times, batch)
                return fn

            return decorator
        self._add(name, handler, priority, times, batch)
        return handler

    def _add(
        self, name: str, handler: Callable[..., Any], priority: int, times: int | None, batch: bool
    ) -> _Listener:
        require_callable("handler", handler)
        listener = _Listener(name, handler, priority, times, batch)
        registered = self._registry.get(name)
        if registered is None:
            registered = self._registry[name] = {}
            self._index[name] = {}
        registered[listener] = None
        # An unhashable callable is not indexed: off() finds it by scanning.
        with contextlib.suppress(TypeError):
            self._index[name].setdefault(handler, []).append(listener)
        if is_pattern(name):
            self._patterns[name] = compile_pattern(name)
        self._invalidate(name)
        return listener

    def _invalidate(self, key: str) -> None:
        if is_pattern(key):
            self._clear_plans()
        else:
            self._plans.pop(key, None)
            self._fast.pop(key, None)
            self._fast1.pop(key, None)

    def _clear_plans(self) -> None:
        self._plans.clear()
        self._fast.clear()
        self._fast1.clear()

    def _update_slow(self) -> None:
        # While slow, the fast table stays empty, so the hot path needs no extra check:
        # a miss in it leads to the general path, which looks at this flag.
        slow = bool(self._links) or self._batch_depth > 0
        if slow != self._slow:
            self._slow = slow
            self._clear_plans()  # rebuilt on demand, with (or without) their fast entries

    def _discard(self, listener: _Listener) -> None:
        key = listener.key
        listeners = self._registry.get(key)
        if listeners is None or listeners.pop(listener, 0) is not None:
            return
        try:
            same = self._index[key].get(listener.handler)
        except TypeError:
            same = None
        if same is not None:
            same.remove(listener)  # registrations of one handler under one name: few
            if not same:
                del self._index[key][listener.handler]
        self._forget(key, listeners)

    def _forget(self, key: str, listeners: dict[_Listener, None]) -> None:
        if not listeners:
            del self._registry[key]
            del self._index[key]
            self._patterns.pop(key, None)
        self._invalidate(key)

    def off(self, name: str, handler: Callable[..., Any]) -> bool:
        """Unregister every registration of ``handler`` under ``name``.

        O(1) in the number of other handlers: the registrations are indexed by handler
        (an unhashable callable is found by a scan instead).

        .. versionchanged:: 0.2
            O(1); a non-callable ``handler`` is refused.

        Args:
            name: The name or pattern it was registered with.
            handler: The handler (compared by equality, so a bound method works).

        Returns:
            Whether anything was removed.

        Raises:
            ConfigurationTypeError: If ``name`` is not a str or ``handler`` not callable.
        """
        check_name("name", name)
        require_callable("handler", handler)
        listeners = self._registry.get(name)
        if not listeners:
            return False
        try:
            hash(handler)  # (an empty dict's pop() would not hash it)
        except TypeError:
            found = [lst for lst in listeners if lst.handler == handler]
        else:
            found = self._index[name].pop(handler, _NOTHING)
        if not found:
            return False
        for listener in found:
            del listeners[listener]
        self._forget(name, listeners)
        return True

    remove_listener = off

    def remove_all_listeners(self, name: str | None = None) -> None:
        """Unregister every handler of ``name``, or of every name when omitted."""
        if name is None:
            self._registry.clear()
            self._index.clear()
            self._patterns.clear()
            self._clear_plans()
            return
        check_name("name", name)
        listeners = self._registry.get(name)
        if listeners:
            listeners.clear()
            self._forget(name, listeners)

    def listeners(self, name: str) -> list[Callable[..., Any]]:
        """The handlers registered under exactly ``name`` (a name or a pattern), in order."""
        check_name("name", name)
        return [lst.handler for lst in sorted(self._registry.get(name, ()), key=_order)]

    def listener_count(self, name: str | None = None) -> int:
        """How many listeners an emit of ``name`` reaches (patterns included).

        Args:
            name: An event name; omitted, the total of registrations on this emitter.
        """
        if name is None:
            return sum(len(v) for v in self._registry.values())
        check_name("name", name)
        return len(self._plan_for(name))

    def event_names(self) -> list[str]:
        """The names and patterns that have listeners."""
        return list(self._registry)

    def _plan_for(self, name: str) -> tuple[_Listener, ...]:
        try:
            plan = self._plans.get(name)
        except TypeError:  # unhashable: check_name below says what is wrong
            plan = None
        if plan is not None:
            return plan
        check_name("name", name)
        chosen = list(self._registry.get(name, ())) if not is_pattern(name) else []
        for pattern, matches in self._patterns.items():
            if matches(name):
                chosen.extend(self._registry[pattern])
        chosen.sort(key=_order)
        plan = tuple(chosen)
        if len(self._plans) >= _PLAN_CACHE_LIMIT:
            self._clear_plans()
        self._plans[name] = plan
        if (
            not self._slow
            and not is_pattern(name)
            and all(
                lst.is_async
                and lst.remaining is None
                and not lst.batch
                and lst.priority != _MONITOR
                for lst in plan
            )
        ):
            if len(plan) == 1:
                self._fast1[name] = plan[0].fn
            else:
                self._fast[name] = tuple(lst.fn for lst in plan)
        return plan

    # ------------------------------------------------------------------ emitting

    async def emit(
        self, name: str, data: Any = None, *, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Deliver an event to the handlers of ``name`` and wait for them.

        Handlers run in priority order on the calling task; a handler may emit on this
        emitter. Inside a :meth:`batch_operations` block of this task, the event is queued
        instead and delivered when the block exits. The event then flows through the
        links (:meth:`pipe`, :meth:`filter`, :meth:`map`), reaching each emitter at most once.

        .. versionchanged:: 0.2
            ``metadata`` is keyword-only; a pattern as ``name`` is refused; failures raise
            :class:`EventHandlerError` as an exception group (``except*`` works).

        Args:
            name: The event's name (not a pattern).
            data: The payload.
            metadata: Extra information (a mapping), copied into ``event.metadata``.

        Raises:
            EventHandlerError: When handlers failed and the error policy says to raise: an
                exception group of every failure, in handler order.
            ConfigurationError: On an empty name or a pattern (``*``, ``?``).
            ConfigurationTypeError: On a non-string name or a ``metadata`` that is not a
                mapping.
        """
        try:
            handler = self._fast1.get(name)
        except TypeError:  # unhashable, so not a str
            raise ConfigurationTypeError(f"name must be a non-empty str, got {name!r}") from None
        if handler is not None:
            # The commonest case, kept to the bare minimum: one plain async handler.
            # One counter stands for both an emit and a call (see stats()).
            self._fast1_emits += 1
            event: Event[Any] = BareEvent()
            event.name = name
            event.data = data
            if metadata is not None:
                event._metadata = copy_metadata(metadata)
            event.propagate = True
            try:
                await handler(event)
            except Exception as exc:
                await self._fail(event, [(handler, exc)])
            return
        fast = self._fast.get(name)
        if fast is None:
            if self._slow:
                await self._emit_slow(name, data, metadata, None)
                return
            check_event_name(name)  # refuses patterns: they never reach the fast tables
            plan = self._plan_for(name)  # caches the plan
            if name in self._fast1:  # the first emit of a one-handler name
                await self.emit(name, data, metadata=metadata)
                return
            fast = self._fast.get(name)
            if fast is None:
                self._emitted += 1
                await self._run_plan(plan, Event(name, data, metadata))
                return
        # Plain async handlers only: no once-counting, no sync/awaitable probing.
        self._emitted += 1
        if not fast:
            if metadata is not None:
                copy_metadata(metadata)  # refused alike with or without listeners
            return
        event = BareEvent()
        event.name = name
        event.data = data
        if metadata is not None:
            event._metadata = copy_metadata(metadata)
        event.propagate = True
        failures: list[tuple[Callable[..., Any], Exception]] | None = None
        for handler in fast:
            try:
                await handler(event)
            except Exception as exc:
                if failures is None:
                    failures = []
                failures.append((handler, exc))
            if not event.propagate:
                # rare: find how far we got (a handler listed twice stops at its first
                # place, which is where it stopped propagation anyway)
                self._delivered += fast.index(handler) + 1
                break
        else:
            self._delivered += len(fast)
        if failures is not None:
            await self._fail(event, failures)

    async def _run_plan(self, plan: tuple[_Listener, ...], event: Event[Any]) -> None:
        failures: list[tuple[Callable[..., Any], Exception]] | None = None
        calls = 0
        for listener in plan:
            # After stop_propagation() only MONITOR listeners (sorted last) still run.
            if not event.propagate and listener.priority != _MONITOR:
                continue
            if listener.remaining is not None and not self._take(listener):
                continue
            calls += 1
            try:
                if listener.is_async:
                    await listener.fn(event)
                else:
                    result = listener.fn(event)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except Exception as exc:
                if failures is None:
                    failures = []
                failures.append((listener.handler, exc))
        self._delivered += calls
        if failures is not None:
            await self._fail(event, failures)

    async def _fail(
        self, event: Event[Any], failures: list[tuple[Callable[..., Any], Exception]]
    ) -> None:
        errors = await self._settle(event, failures)
        if errors:
            raise _handler_error(event.name, errors)

    async def emit_collect(
        self, name: str, data: Any = None, *, metadata: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """Like :meth:`emit`, and return what the handlers returned.

        The results come in delivery order, from this emitter's handlers then from the
        linked emitters'. Failed handlers contribute nothing. Delivery is immediate, also
        inside a :meth:`batch_operations` block.

        Returns:
            The handlers' return values (awaited when awaitable).
        """
        results: list[Any] = []
        await self._emit_slow(name, data, metadata, results, batchable=False)
        return results

    async def wait_for(
        self,
        name: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a per-call deadline, as in asyncio.wait_for
        predicate: Callable[[Event[Any]], bool] | None = None,
    ) -> Event[Any]:
        """Wait for the next event of ``name`` (matching ``predicate``) and return it.

        The temporary listener is removed however the wait ends, including cancellation.

        Args:
            name: A name or pattern.
            timeout: Seconds to wait at most; ``None`` waits forever.
            predicate: Only events for which it returns true complete the wait.

        Raises:
            TimeoutError: If ``timeout`` elapsed first (also the builtin ``TimeoutError``).
        """
        check_name("name", name)
        if timeout is not None:
            require_positive("timeout", timeout)
        if predicate is not None:
            require_callable("predicate", predicate)
        future: asyncio.Future[Event[Any]] = asyncio.get_running_loop().create_future()

        def catch(event: Event[Any]) -> None:
            if not future.done() and (predicate is None or predicate(event)):
                future.set_result(event)
                self._discard(listener)

        listener = self._add(name, catch, EventPriority.MONITOR, None, False)
        try:
            if timeout is None:
                return await future
            try:
                async with asyncio.timeout(timeout):
                    return await future
            except builtins.TimeoutError as exc:
                raise TimeoutError(
                    f"no {name!r} event within {timeout} s", timeout=timeout
                ) from exc
        finally:
            self._discard(listener)

    def _take(self, listener: _Listener) -> bool:
        # Counted down before the call, so concurrent or re-entrant emits never run a
        # once-handler twice; the plan still holding it just skips it.
        remaining = listener.remaining
        assert remaining is not None
        if remaining <= 0:
            return False
        listener.remaining = remaining - 1
        if remaining == 1:
            self._discard(listener)
        return True

    async def _emit_slow(
        self,
        name: str,
        data: Any,
        metadata: Mapping[str, Any] | None,
        results: list[Any] | None,
        *,
        batchable: bool = True,
    ) -> None:
        check_event_name(name)
        if metadata is not None:
            metadata = copy_metadata(metadata)
        if batchable and self._batch_depth:
            batches = _BATCHES.get()
            block = None if batches is None else batches.get(self)
            # A task started inside the block inherits the context but not the block.
            if block is not None and block._owner is asyncio.current_task():
                block._pending.append((name, data, metadata))
                return
        errors: list[Exception] = []
        await self._dispatch(Event(name, data, metadata), {self}, errors, results, False)
        if errors:
            raise _handler_error(name, errors)

    async def _dispatch(
        self,
        event: Event[Any],
        seen: set[EventEmitter],
        errors: list[Exception],
        results: list[Any] | None,
        skip_batch: bool,
    ) -> None:
        plan = self._plan_for(event.name)
        self._emitted += 1
        failures: list[tuple[Callable[..., Any], Exception]] = []
        calls = 0
        for listener in plan:
            if not event.propagate and listener.priority != _MONITOR:
                continue
            if skip_batch and listener.batch:
                continue
            if listener.remaining is not None and not self._take(listener):
                continue
            calls += 1
            try:
                result = listener.fn(event)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                failures.append((listener.handler, exc))
            else:
                if results is not None:
                    results.append(result)
        self._delivered += calls
        if failures:
            errors.extend(await self._settle(event, failures))
        if not self._links:
            return
        if not event.propagate:
            event = event.copy()  # stopping propagation here does not silence the links
        for target in tuple(self._links):
            if target in seen:
                continue
            try:
                admitted = await target._admit(event)
            except Exception as exc:
                target._failures += 1
                errors.append(exc)
                continue
            if admitted is None:
                continue
            seen.add(target)
            await target._dispatch(admitted, seen, errors, results, False)

    async def _admit(self, event: Event[Any]) -> Event[Any] | None:
        """Apply this emitter's operator to an event arriving through a link."""
        op = self._operator
        if op is None:
            return event
        out = op(event)
        if self._operator_async:
            out = await out
        if self._operator_kind == "filter":
            return event if out else None
        if isinstance(out, Event):
            return out
        return Event(event.name, out, event.metadata)

    async def _settle(
        self, event: Event[Any], failures: list[tuple[Callable[..., Any], Exception]]
    ) -> list[Exception]:
        """Apply the error policy; return the failures that the emit must raise."""
        self._failures += len(failures)
        policy = self._error_policy
        if policy == "ignore":
            return []
        if policy == "log":
            for handler, exc in failures:
                logger.error("handler %r failed on event %r", handler, event.name, exc_info=exc)
            return []
        # Only listeners registered for "error" itself opt in: a "*" listener is not an
        # error handler. The "error" event is delivered on this emitter only (not through
        # links), to every listener it matches, patterns included.
        if policy == "auto" and event.name != "error" and self._registry.get("error"):
            errors: list[Exception] = []
            plan = self._plan_for("error")
            for handler, exc in failures:
                self._emitted += 1
                try:
                    await self._run_plan(
                        plan, Event("error", exc, {"event": event, "handler": handler})
                    )
                except EventHandlerError as failed:
                    errors.extend(failed.errors)
            return errors
        return [exc for _, exc in failures]

    # ------------------------------------------------------------------ operators

    def pipe(self, other: EventEmitter) -> EventEmitter:
        """Forward every event of this emitter to ``other`` (after this emitter's handlers).

        Linking twice is a no-op. One emission reaches each emitter at most once however
        many links lead there, so cycles are safe.

        Args:
            other: The downstream emitter; its own operator (if it came from
                :meth:`filter` or :meth:`map`) applies to what arrives.

        Returns:
            ``other``, so links chain: ``a.pipe(b).pipe(c)``.
        """
        if not isinstance(other, EventEmitter):
            raise ConfigurationTypeError(f"other must be an EventEmitter, got {other!r}")
        if other is not self and other not in self._links:
            self._links.append(other)
            self._update_slow()
        return other

    def unpipe(self, other: EventEmitter | None = None) -> None:
        """Remove the link to ``other``, or every link when omitted."""
        if other is not None and not isinstance(other, EventEmitter):
            raise ConfigurationTypeError(f"other must be an EventEmitter or None, got {other!r}")
        if other is None:
            self._links.clear()
        elif other in self._links:
            self._links.remove(other)
        self._update_slow()

    def filter(self, predicate: Callable[[Event[Any]], object]) -> EventEmitter:
        """A new emitter, fed by this one, that admits only events passing ``predicate``.

        The predicate (sync or async) applies to every event arriving at the new emitter
        through any link; events emitted directly on it are not filtered.

        Args:
            predicate: Called with the :class:`Event`; a true result admits it.

        Returns:
            The new emitter, already linked from this one.
        """
        return self._derive("filter", require_callable("predicate", predicate))

    def map(self, transform: Callable[[Event[Any]], Any]) -> EventEmitter:
        """A new emitter, fed by this one, that receives transformed events.

        ``transform`` (sync or async) gets the arriving :class:`Event` and returns the event
        to deliver: an :class:`Event`, or any other value used as the new ``data`` under
        the same name. The original event is never changed by mtaio.

        Args:
            transform: The transformation.

        Returns:
            The new emitter, already linked from this one.
        """
        return self._derive("map", require_callable("transform", transform))

    def _derive(self, kind: Literal["filter", "map"], op: Callable[..., Any]) -> EventEmitter:
        child = EventEmitter(error_policy=self._error_policy)
        child._operator = op
        child._operator_kind = kind
        child._operator_async = is_async_callable(op)
        self.pipe(child)
        return child

    # ------------------------------------------------------------------ batching

    def batch_operations(self) -> _BatchBlock:
        """An async context manager that queues this task's emits until the block exits.

        On a normal exit the queued events are delivered in order, then every
        :meth:`on_batch` handler is called once with all of the block's events it matches.
        If the block raises, nothing is delivered. Blocks nest: an inner block's events join
        the outer block. Emits from other tasks are not affected.

        Example:
            >>> async def main(emitter):
            ...     async with emitter.batch_operations():
            ...         await emitter.emit("row", 1)
            ...         await emitter.emit("row", 2)  # both delivered here, at the exit
        """
        return _BatchBlock(self)

    async def _flush(self, pending: list[_Pending]) -> None:
        errors: list[Exception] = []
        events: list[Event[Any]] = []
        for name, data, metadata in pending:
            event: Event[Any] = Event(name, data, metadata)
            events.append(event)
            await self._dispatch(event, {self}, errors, None, True)
        batched: dict[_Listener, list[Event[Any]]] = {}
        for event in events:
            for listener in self._plan_for(event.name):
                if listener.batch:
                    batched.setdefault(listener, []).append(event)
        for listener in sorted(batched, key=_order):
            try:
                result = listener.handler(batched[listener])
                if inspect.isawaitable(result):
                    await result
                self._delivered += 1
            except Exception as exc:
                failed = await self._settle(events[-1], [(listener.handler, exc)])
                errors.extend(failed)
        if errors:
            raise _handler_error(pending[0][0], errors)

    # ------------------------------------------------------------------ introspection

    def stats(self) -> EmitterStats:
        """Counters: events emitted, handler calls, failures, listeners registered."""
        return EmitterStats(
            emitted=self._emitted + self._fast1_emits,
            delivered=self._delivered + self._fast1_emits,
            failures=self._failures,
            listeners=self.listener_count(),
        )


def _handler_error(name: str, errors: Sequence[Exception]) -> EventHandlerError:
    # An exception group: ``except* ValueError`` picks the handlers' ValueErrors out.
    return EventHandlerError(f"{len(errors)} handler(s) failed on event {name!r}", errors, name)


@final
class _BatchBlock:
    """The context manager returned by :meth:`EventEmitter.batch_operations`."""

    __slots__ = ("_emitter", "_outer", "_owner", "_pending", "_token")

    def __init__(self, emitter: EventEmitter) -> None:
        self._emitter = emitter
        self._pending: list[_Pending] = []
        self._outer: _BatchBlock | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._token: contextvars.Token[dict[EventEmitter, _BatchBlock] | None] | None = None

    async def __aenter__(self) -> None:
        if self._token is not None:
            raise ConfigurationError("a batch_operations() block cannot be entered twice")
        self._owner = asyncio.current_task()
        batches = _BATCHES.get()
        outer = None if batches is None else batches.get(self._emitter)
        self._outer = outer if outer is not None and outer._owner is self._owner else None
        mapping = dict(batches) if batches else {}
        mapping[self._emitter] = self
        self._token = _BATCHES.set(mapping)
        self._emitter._batch_depth += 1
        self._emitter._update_slow()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        emitter = self._emitter
        emitter._batch_depth -= 1
        emitter._update_slow()
        assert self._token is not None
        _BATCHES.reset(self._token)
        pending, self._pending = self._pending, []
        if exc_type is not None or not pending:
            return
        if self._outer is not None:
            self._outer._pending.extend(pending)
            return
        await emitter._flush(pending)
