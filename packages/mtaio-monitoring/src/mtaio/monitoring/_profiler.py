"""Profiler: traces of sync and async calls, nested per task through contextvars."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import math
import threading
import time
import traceback
import tracemalloc
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar, cast, final, overload

from mtaio.exceptions import (
    ConfigurationError,
    MonitoringError,
    require_callable,
    require_positive_int,
)
from mtaio.typing import Clock

from ._blocks import Block
from ._metrics import quantile
from ._sampler import Sampler
from ._tracing import (
    C_CURRENT_TASK,
    GENERIC,
    _TaskStack,
    new_stack,
    signature_source,
    tasks_get,
    wrapper_maker,
)
from ._validate import require_bool, require_finite, require_name

_F = TypeVar("_F", bound=Callable[..., Any])

#: The most finished traces a profiler keeps.
MAX_TRACES = 100_000_000

# A finished trace as stored: a tuple is cheaper to build than an object; get_profile() turns
# it into a Trace. The decorator's hot path stores the short form (7 items: every tuple slot
# costs), Span the long one with the memory delta and the stack.
# (id, parent id, name, start, end, error type name, task name[, memory delta, stack])
_Short = tuple[int, int | None, str, float, float, str | None, str | None]
_Long = tuple[
    int, int | None, str, float, float, str | None, str | None, int | None, tuple[str, ...] | None
]
_Record = _Short | _Long


@final
@dataclass(frozen=True, slots=True)
class Trace:
    """One traced call.

    Attributes:
        id: Unique within its profiler, in order of start.
        name: The traced name (the function's qualified name by default).
        parent_id: The trace this one ran inside (same task, or the task that created this
            one's task), or None for a root.
        depth: 0 for a root, parent's depth + 1 otherwise.
        start: Start, on the profiler's clock.
        end: End, on the profiler's clock.
        duration: ``end - start`` in seconds.
        task: Name of the asyncio task it ran in (None outside a task or when
            ``trace_async_tasks`` is off).
        error: Type name of the exception that ended it, if one did.
        memory_delta: Bytes allocated minus freed during it (``trace_memory=True`` only;
            process-wide, so concurrent tasks' allocations count too).
        stack: Where it was started (``collect_stack_trace=True`` only).
    """

    id: int
    name: str
    parent_id: int | None
    depth: int
    start: float
    end: float
    duration: float
    task: str | None = None
    error: str | None = None
    memory_delta: int | None = None
    stack: tuple[str, ...] | None = None


@final
@dataclass(frozen=True, slots=True)
class TraceStats:
    """Aggregate figures of every trace with one name (seconds)."""

    name: str
    count: int
    total: float
    mean: float
    min: float
    p50: float
    p95: float
    max: float
    errors: int


@final
@dataclass(frozen=True, slots=True)
class Profile:
    """What :meth:`Profiler.get_profile` returns.

    Attributes:
        traces: Every finished trace, in order of start.
        total_time: Seconds from the first start to the last end (wall span; concurrent
            traces overlap within it).
        stats: Per-name count, total, mean, min, p50, p95, max and errors.
    """

    traces: tuple[Trace, ...]
    total_time: float
    stats: Mapping[str, TraceStats] = field(default_factory=dict)

    @property
    def roots(self) -> list[Trace]:
        """Traces without a (recorded) parent."""
        ids = {t.id for t in self.traces}
        return [t for t in self.traces if t.parent_id is None or t.parent_id not in ids]

    def children(self, trace: Trace | int) -> list[Trace]:
        """Traces started directly inside ``trace``."""
        tid = trace if isinstance(trace, int) else trace.id
        return [t for t in self.traces if t.parent_id == tid]

    def by_name(self, name: str) -> list[Trace]:
        """Traces called ``name``."""
        return [t for t in self.traces if t.name == name]

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as plain data."""
        return {
            "total_time": self.total_time,
            "stats": {n: _asdict(s) for n, s in self.stats.items()},
            "traces": [_asdict(t) for t in self.traces],
        }

    def format(self) -> str:
        """Return the per-name statistics as a text table, slowest total first."""
        head = (
            f"{'name':<40} {'count':>7} {'total s':>10} {'mean ms':>10} {'p95 ms':>10} "
            f"{'max ms':>10}"
        )
        lines = [head, "-" * len(head)]
        for s in sorted(self.stats.values(), key=lambda s: s.total, reverse=True):
            lines.append(
                f"{_short(s.name):<40} {s.count:>7} {s.total:>10.4f} {s.mean * 1e3:>10.3f} "
                f"{s.p95 * 1e3:>10.3f} {s.max * 1e3:>10.3f}"
            )
        lines.append(f"total time: {self.total_time:.4f} s, traces: {len(self.traces)}")
        return "\n".join(lines)


def _short(name: str, width: int = 40) -> str:
    # Keep the end of a long qualified name: "...<locals>.handler" says more than its head.
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _asdict(obj: Trace | TraceStats) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@final
class Span(Block):
    """An open trace: what :meth:`Profiler.start_trace` and :meth:`Profiler.trace_context` give.

    Use it as ``with``/``async with``, or end it with :meth:`Profiler.end_trace`.
    """

    __slots__ = (
        "_ended",
        "_frames",
        "_mem0",
        "_profiler",
        "_stack",
        "_task",
        "id",
        "name",
        "parent_id",
        "start",
    )

    def __init__(self, profiler: Profiler, name: str) -> None:
        self._profiler = profiler
        self.name = name
        self.id = -1
        self.parent_id: int | None = None
        self.start = math.nan
        self._ended = False
        self._mem0: int | None = None
        self._stack: tuple[str, ...] | None = None
        self._task: str | None = None
        self._frames: _TaskStack | None = None

    def _open(self) -> Self:
        p = self._profiler
        if self.id != -1:
            raise MonitoringError(f"trace {self.name!r} was already started")
        self.id = next(p._ids)
        if not p.enabled:
            self._ended = True  # a disabled profiler records nothing
            return self
        frames = self._frames = p._enter_stack()
        self.parent_id = frames.top
        frames.top = self.id
        if p.trace_async_tasks:
            self._task = frames.name
        if p.collect_stack_trace:
            self._stack = tuple(traceback.format_stack(limit=p.stack_limit + 2)[:-2])
        if p.trace_memory:
            self._mem0 = tracemalloc.get_traced_memory()[0]
        self.start = p._clock()
        return self

    def _close(self, error: str | None) -> None:
        if self._ended:
            return
        self._ended = True
        p = self._profiler
        end = p._clock()
        mem = None if self._mem0 is None else tracemalloc.get_traced_memory()[0] - self._mem0
        # Ended out of order (end_trace on an outer span first, or from another task):
        # only the innermost open trace hands the stack back to its parent.
        frames = self._frames
        if frames is not None and frames.top == self.id:
            frames.top = self.parent_id
        p._records.append(
            (
                self.id,
                self.parent_id,
                self.name,
                self.start,
                end,
                error,
                self._task,
                mem,
                self._stack,
            )
        )

    def _enter(self) -> None:
        self._open()

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        self._close(None if exc_type is None else exc_type.__name__)


@final
class Profiler:
    """Trace sync and async calls; correct when many tasks are traced at once.

    Each task keeps its open traces on its own stack (found through a
    :class:`~contextvars.ContextVar`, read once per call), so concurrent tasks never nest
    under one another; a task created inside a trace nests under the trace its creator has
    open when the task first traces (for awaited tasks, ``gather`` and task groups: the
    trace that created it), which is where its work belongs. Durations use a monotonic clock
    (``time.perf_counter``). Besides decorators, a sampling mode (:meth:`sampling`) reads
    the stack from another thread, for always-on use.

    Args:
        enabled: Record traces; a disabled profiler's decorators just call through.
        trace_async_tasks: Record the asyncio task name of each trace.
        collect_stack_trace: Record where each trace started (costly).
        trace_memory: Record the memory allocated during each trace through tracemalloc
            (started if it is not already; costly).
        max_traces: Finished traces kept; the oldest are dropped beyond it.
        clock: Monotonic clock for durations.
        stack_limit: Frames kept per stack when ``collect_stack_trace`` is on.
        sample_interval: Default seconds between two samples of the sampling mode.

    Example:
        >>> profiler = Profiler()
        >>> @profiler.trace
        ... async def fetch() -> int:
        ...     return 1
    """

    def __init__(
        self,
        enabled: bool = True,
        trace_async_tasks: bool = True,
        collect_stack_trace: bool = False,
        *,
        trace_memory: bool = False,
        max_traces: int = 100_000,
        clock: Clock = time.perf_counter,
        stack_limit: int = 10,
        sample_interval: float = 0.005,
    ) -> None:
        self._enabled = require_bool("enabled", enabled)
        self._trace_async_tasks = require_bool("trace_async_tasks", trace_async_tasks)
        self._collect_stack_trace = require_bool("collect_stack_trace", collect_stack_trace)
        self._trace_memory = require_bool("trace_memory", trace_memory)
        self.stack_limit = require_positive_int("stack_limit", stack_limit)
        if require_positive_int("max_traces", max_traces) > MAX_TRACES:
            raise ConfigurationError(
                f"max_traces must be at most {MAX_TRACES:,}, got {max_traces!r}"
            )
        self._clock = require_callable("clock", clock)
        self._sample_interval = require_finite("sample_interval", sample_interval)
        if self._sample_interval <= 0:
            raise ConfigurationError(
                f"sample_interval must be a finite positive number, got {sample_interval!r}"
            )
        self._sampler: Sampler | None = None
        self._mode = 0
        self._update_mode()
        self._ids = itertools.count()
        self._records: deque[_Record] = deque(maxlen=max_traces)
        # One variable per profiler: two profilers trace independently of each other.
        self._stacks: ContextVar[_TaskStack | None] = ContextVar(
            f"mtaio_trace_{id(self):x}", default=None
        )
        self._started_tracemalloc = False
        if self.trace_memory and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracemalloc = True

    # The decorator's hot path reads one attribute, ``_mode``: 0 = disabled, 1 = lean (no task
    # names), 2 = default, 3 = with stacks or memory (through Span). The public flags are
    # properties that keep it up to date.
    def _update_mode(self) -> None:
        if not self._enabled:
            self._mode = 0
        elif self._collect_stack_trace or self._trace_memory:
            self._mode = 3
        else:
            self._mode = 2 if self._trace_async_tasks else 1

    @property
    def enabled(self) -> bool:
        """Whether calls are traced; settable at any time."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = require_bool("enabled", value)
        self._update_mode()

    @property
    def trace_async_tasks(self) -> bool:
        """Whether each trace records its asyncio task's name; settable."""
        return self._trace_async_tasks

    @trace_async_tasks.setter
    def trace_async_tasks(self, value: bool) -> None:
        self._trace_async_tasks = require_bool("trace_async_tasks", value)
        self._update_mode()

    @property
    def collect_stack_trace(self) -> bool:
        """Whether each trace records where it started; settable."""
        return self._collect_stack_trace

    @collect_stack_trace.setter
    def collect_stack_trace(self, value: bool) -> None:
        self._collect_stack_trace = require_bool("collect_stack_trace", value)
        self._update_mode()

    @property
    def trace_memory(self) -> bool:
        """Whether each trace records its tracemalloc memory delta (fixed at construction)."""
        return self._trace_memory

    def close(self) -> None:
        """Stop sampling, and tracemalloc if this profiler started it."""
        self.stop_sampling()
        if self._started_tracemalloc:
            self._started_tracemalloc = False
            tracemalloc.stop()

    # -- sampling --------------------------------------------------------------------------

    @property
    def sampling_active(self) -> bool:
        """Whether the sampling mode is on."""
        return self._sampler is not None

    def start_sampling(self, interval: float | None = None) -> None:
        """Sample the calling thread's stack every ``interval`` seconds, from another thread.

        The sampling mode costs the sampled code nearly nothing (no decorator, no hook; a
        sampler thread reads the stack), for always-on use in production. Frames seen in
        consecutive samples become :class:`Trace` records with parents, depths and the
        running task's name, so :meth:`get_profile` and :meth:`Profile.format` report
        them the same way as decorated calls. Frames of asyncio, threading and this package
        are left out. Durations are multiples of the interval, and a suspended coroutine is
        not on the stack: the figures say where the loop's thread spends its time.

        Args:
            interval: Seconds between samples; the profiler's ``sample_interval`` by default.

        Raises:
            MonitoringError: If sampling is already on.
        """
        if self._sampler is not None:
            raise MonitoringError("the profiler is already sampling; stop_sampling() first")
        every = self._sample_interval if interval is None else require_finite("interval", interval)
        if every <= 0:
            raise ConfigurationError(f"interval must be a finite positive number, got {interval!r}")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        sampler = Sampler(
            threading.get_ident(), every, self._clock, self._ids, self._records.append, loop
        )
        sampler.start()
        self._sampler = sampler

    def stop_sampling(self) -> int:
        """Stop the sampling mode (if on) and return how many samples it took."""
        sampler, self._sampler = self._sampler, None
        if sampler is None:
            return 0
        sampler.stop()
        return sampler.samples

    def sampling(self, interval: float | None = None) -> Sampling:
        """Return a context manager (``with``/``async with``) sampling its body.

        Example:
            >>> profiler = Profiler()
            >>> with profiler.sampling(0.01):
            ...     sum(range(1000))
            499500
        """
        return Sampling(self, interval)

    # -- tracing ---------------------------------------------------------------------------

    def _enter_stack(self) -> _TaskStack:
        """Return the current task's stack of open traces (created at its first trace)."""
        stack = self._stacks.get()
        own = new_stack(stack)
        if own is not stack:
            self._stacks.set(own)
        return own

    @overload
    def trace(self, func: _F, /) -> _F: ...

    @overload
    def trace(self, name: str | None = None, /) -> Callable[[_F], _F]: ...

    @overload
    def trace(self, *, name: str) -> Callable[[_F], _F]: ...

    def trace(self, *args: Any, name: str | None = None) -> Any:
        """Decorate a function (sync or async) so each call is traced.

        Use it bare (``@profiler.trace``: the name is the function's qualified name) or with
        a name (``@profiler.trace("db.query")``, ``@profiler.trace(name="db.query")``).
        """
        if len(args) > 1:
            raise ConfigurationError(f"trace() takes one function or name, got {args!r}")
        if name is not None:
            require_name("name", name)
        func = args[0] if args else None
        if callable(func):
            return self._wrap(func, name or _qualname(func))
        if func is not None and not isinstance(func, str):
            raise ConfigurationError(f"trace() takes a function or a name, got {func!r}")
        label = func or name

        def decorate(fn: Callable[..., Any]) -> Any:
            return self._wrap(fn, label or _qualname(fn))

        return decorate

    def _wrap(self, fn: _F, name: str) -> _F:
        if not callable(fn):
            raise ConfigurationError(f"trace() decorates a callable, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            params, args = signature_source(fn)
            make = wrapper_maker(params, args)
            async_wrapper = make(
                fn,
                name,
                self,
                Span,
                self._stacks.get,
                self._stacks.set,
                new_stack,
                self._ids,
                self._clock,
                self._records.append,
                threading.get_ident,
                tasks_get,
                C_CURRENT_TASK,
            )
            if (params, args) != GENERIC:
                # The function's own default objects, as the undecorated call would bind.
                async_wrapper.__defaults__ = fn.__defaults__
                async_wrapper.__kwdefaults__ = fn.__kwdefaults__
            return cast("_F", functools.wraps(fn)(async_wrapper))

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            if self._mode == 0:
                return fn(*args, **kwargs)
            with Span(self, name):
                return fn(*args, **kwargs)

        return sync_wrapper  # type: ignore[return-value]

    def trace_context(self, name: str) -> Span:
        """Return a context manager (``with`` or ``async with``) tracing its body as ``name``."""
        _check_name(name)
        return Span(self, name)

    def start_trace(self, name: str) -> Span:
        """Start a trace now; finish it with :meth:`end_trace` (prefer :meth:`trace_context`)."""
        _check_name(name)
        return Span(self, name)._open()

    def end_trace(self, span: Span, error: BaseException | None = None) -> None:
        """Finish a trace started by :meth:`start_trace` (a second call does nothing)."""
        obj: object = span  # checked at run time: users call this untyped too
        if not isinstance(obj, Span) or obj._profiler is not self:
            raise ConfigurationError(f"span must be a Span from this profiler, got {span!r}")
        span._close(None if error is None else type(error).__name__)

    def __repr__(self) -> str:
        state = "enabled" if self._enabled else "disabled"
        sampling = " sampling" if self._sampler is not None else ""
        return f"<Profiler {state}{sampling} traces={len(self._records)}>"

    # -- results ---------------------------------------------------------------------------

    @property
    def trace_count(self) -> int:
        """Finished traces currently kept."""
        return len(self._records)

    def clear(self) -> None:
        """Forget every finished trace."""
        self._records.clear()

    async def get_profile(self) -> Profile:
        """Return every finished trace with per-name statistics."""
        records = sorted(self._records, key=lambda r: r[0])
        parents = {r[0]: r[1] for r in records}
        depths: dict[int, int] = {}

        def depth(tid: int) -> int:
            # Iterative with memo: deep recursion in user code must not overflow us.
            chain: list[int] = []
            cur: int | None = tid
            while cur in parents and cur not in depths:
                assert cur is not None
                chain.append(cur)
                cur = parents[cur]
            # Stopped at: the root's None, a memoised ancestor, or a parent not recorded
            # (still open, or dropped), which counts as a root.
            base = -1 if cur is None else depths.get(cur, 0)
            for node in reversed(chain):
                base += 1
                depths[node] = base
            return depths[tid]

        traces = tuple(
            Trace(r[0], r[2], r[1], depth(r[0]), r[3], r[4], r[4] - r[3], r[6], r[5], *r[7:])
            for r in records
        )
        by_name: dict[str, list[Trace]] = {}
        for t in traces:
            by_name.setdefault(t.name, []).append(t)
        stats = {}
        for name, group in by_name.items():
            durations = sorted(t.duration for t in group)
            total = sum(durations)
            stats[name] = TraceStats(
                name,
                len(group),
                total,
                total / len(group),
                durations[0],
                quantile(durations, 0.5),
                quantile(durations, 0.95),
                durations[-1],
                sum(1 for t in group if t.error is not None),
            )
        total_time = max(t.end for t in traces) - min(t.start for t in traces) if traces else 0.0
        return Profile(traces, total_time, stats)


@final
class Sampling(Block):
    """What :meth:`Profiler.sampling` returns: sampling on while its block runs."""

    __slots__ = ("_interval", "_profiler", "samples")

    def __init__(self, profiler: Profiler, interval: float | None) -> None:
        self._profiler = profiler
        self._interval = interval
        self.samples = 0

    def _enter(self) -> None:
        self._profiler.start_sampling(self._interval)

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        self.samples = self._profiler.stop_sampling()


def _qualname(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _check_name(name: object) -> None:
    require_name("name", name)
