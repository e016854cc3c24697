"""Stream: a lazy, typed, subclassable async stream with fluent operators.

Speed: consecutive ``map``/``filter`` calls are *fused*: they are kept as a list of steps and
run by one loop compiled for that exact chain (the way ``dataclasses`` builds ``__init__``),
so a chain of N steps costs one generator frame per item, not N. Terminals (``reduce``,
``to_list``, ``count``, ``first``, ``last``) inline their accumulation into that loop as
well. Over a synchronous source with synchronous steps the chain is composed from the
builtin ``map`` and ``filter``, which run at C speed. The other operators are async
generators over the stream they were called on.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import itertools
import math
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
)
from typing import Any, Final, Generic, TypeVar, cast, overload

from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    StreamError,
    require_callable,
    require_non_negative_int,
    require_positive,
    require_positive_int,
)
from mtaio.exceptions import TimeoutError as MTAIOTimeoutError
from mtaio.typing import is_async_callable

from ._aio import END, aclose, buffered, cancel_and_wait, next_or_end, ordered_map

T = TypeVar("T")
U = TypeVar("U")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")

_MISSING: Final[Any] = object()

# One fused step: (kind, function). Kinds: "map", "amap", "filter", "afilter".
_Step = tuple[str, Callable[[Any], Any]]

_STEP_CODE: Final = {
    "map": "x = f{i}(x)",
    "amap": "x = await f{i}(x)",
    "filter": "if not f{i}(x): continue",
    "afilter": "if not (await f{i}(x)): continue",
}
# sink -> (extra parameters, prologue, per-item statement, epilogue)
_SINKS: Final = {
    "iter": ("", "", "yield x", ""),
    "list": ("", "out = []; append = out.append", "append(x)", "return out"),
    "reduce": (", red, acc", "", "acc = red(acc, x)", "return acc"),
    "areduce": (", red, acc", "", "acc = await red(acc, x)", "return acc"),
    # No initial value: the first item starts the fold (acc enters as the MISSING marker).
    "reduce1": (", red, acc", "", "acc = x if acc is M else red(acc, x)", "return acc"),
    "areduce1": (", red, acc", "", "acc = x if acc is M else await red(acc, x)", "return acc"),
    "last": (", acc", "", "acc = x", "return acc"),
    "count": ("", "n = 0", "n += 1", "return n"),
    "first": (", default", "", "return x", "return default"),
}
_COMPILED: dict[tuple[bool, tuple[str, ...], str], Callable[..., Any]] = {}


def _compile(is_async: bool, kinds: tuple[str, ...], sink: str) -> Callable[..., Any]:
    """Build (once per shape) the loop that runs ``kinds`` over a source into ``sink``."""
    key = (is_async, kinds, sink)
    fn = _COMPILED.get(key)
    if fn is not None:
        return fn
    params, prologue, statement, epilogue = _SINKS[sink]
    names = "".join(f", f{i}" for i in range(len(kinds)))
    body = [_STEP_CODE[k].format(i=i) for i, k in enumerate(kinds)] + [statement]
    loop = "async for x in it:" if is_async else "for x in it:"
    close = (
        "c = getattr(it, 'aclose', None)\n        if c is not None: await c()"
        if is_async
        else "c = getattr(base, 'close', None)\n        if c is not None: c()"
    )
    lines = [
        f"async def _run(it, base{names}{params}):",
        f"    {prologue}",
        "    try:",
        f"        {loop}",
        *(f"            {line}" for line in body),
        f"        {epilogue}",
        "    finally:",
        f"        {close}",
    ]
    namespace: dict[str, Any] = {"M": _MISSING}
    exec("\n".join(lines), namespace)  # the code is built from the constants above
    compiled: Callable[..., Any] = namespace["_run"]
    _COMPILED[key] = compiled
    return compiled


class _OneShot:
    """A source that can be read once (an iterator, a generator): a second read raises.

    Without this, iterating such a stream a second time silently yields nothing. It hands
    out the iterator itself, so reading it costs nothing per item.
    """

    __slots__ = ("it", "used")

    def __init__(self, it: Any) -> None:
        self.it = it
        self.used = False

    def _take(self) -> Any:
        if self.used:
            raise StreamError(
                f"this stream's source {self.it!r} is a one-shot iterator and was already "
                "read; build the stream from a re-iterable source (a list, a range) to read it "
                "again"
            )
        self.used = True
        return self.it

    def __iter__(self) -> Any:
        return iter(self._take())

    def __aiter__(self) -> Any:
        return self._take().__aiter__()

    def __repr__(self) -> str:
        return repr(self.it)


class _Gen:
    """A deferred operator: ``__aiter__`` starts ``fn(upstream, *args)`` afresh each time."""

    __slots__ = ("args", "fn", "upstream")

    def __init__(self, fn: Callable[..., AsyncIterator[Any]], upstream: Any, args: tuple[Any, ...]):
        self.fn = fn
        self.upstream = upstream
        self.args = args

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.fn(self.upstream, *self.args)


def _function(name: str, fn: object) -> tuple[Callable[..., Any], bool]:
    require_callable(name, fn)
    return cast("Callable[..., Any]", fn), is_async_callable(fn)


class Stream(Generic[T]):
    """A lazy async stream of ``T``: chain operators, then iterate or call a terminal.

    Nothing runs until the stream is iterated. Every operator returns a new stream of the
    same class (so subclasses keep their own methods through a chain) and leaves the
    original unchanged; each function in a chain is called exactly once per item that
    reaches it. A stream over a re-iterable source (a list, a range) can be iterated again;
    one over a one-shot source (a generator, an iterator) raises :class:`StreamError` when
    read a second time, through it or through any stream derived from it.

    Functions given to operators may be sync or async (``async def`` callables are awaited).
    A sync function returning an awaitable is not awaited: declare it ``async``.

    Args:
        source: A sync or async iterable.

    Raises:
        ConfigurationTypeError: If ``source`` is not iterable.

    Example:
        >>> import asyncio
        >>> s = Stream.from_iterable(range(10)).map(lambda x: x * 2).filter(lambda x: x % 3 == 0)
        >>> asyncio.run(s.to_list())
        [0, 6, 12, 18]

    .. versionadded:: 0.1
    """

    __slots__ = ("_async", "_source", "_steps")

    _source: Any
    _steps: tuple[_Step, ...]
    _async: bool

    def __init__(self, source: Iterable[T] | AsyncIterable[T]) -> None:
        if hasattr(source, "__aiter__"):
            is_async = True
            one_shot = hasattr(source, "__anext__")
        elif hasattr(source, "__iter__"):
            is_async = False
            one_shot = hasattr(source, "__next__")
        else:
            raise ConfigurationTypeError(
                f"source must be an iterable or an async iterable, got {source!r}"
            )
        self._source = _OneShot(source) if one_shot else source
        self._steps = ()
        self._async = is_async

    @classmethod
    def from_iterable(cls, iterable: Iterable[U] | AsyncIterable[U]) -> Stream[U]:
        """Make a stream of this class (a subclass too) over a sync or async iterable.

        Args:
            iterable: The source.

        Returns:
            A new instance of ``cls``.
        """
        return cast("Stream[U]", cls(iterable))  # type: ignore[arg-type]

    # -- plumbing ------------------------------------------------------------------------

    def _derive(self, source: Any, steps: tuple[_Step, ...], is_async: bool) -> Stream[Any]:
        # Built without calling __init__ (a subclass may have its own signature); a
        # subclass's instance attributes are carried over.
        new = object.__new__(type(self))
        state = getattr(self, "__dict__", None)
        if state:
            new.__dict__.update(state)
        new._source = source
        new._steps = steps
        new._async = is_async
        return new

    def _then(self, fn: Callable[..., AsyncIterator[Any]], *args: Any) -> Stream[Any]:
        return self._derive(_Gen(fn, self, args), (), True)

    def _step(self, kind: str, fn: Callable[..., Any]) -> Stream[Any]:
        return self._derive(self._source, (*self._steps, (kind, fn)), self._async)

    def _plan(self, sink: str) -> tuple[Callable[..., Any], list[Any]]:
        """The compiled loop for this chain and its leading arguments."""
        steps = self._steps
        if self._async:
            it = self._source.__aiter__()
            return _compile(True, tuple(k for k, _ in steps), sink), [
                it,
                it,
                *(f for _, f in steps),
            ]
        base = iter(self._source)
        chain: Iterator[Any] = base
        rest = steps
        # Leading sync steps compose into builtin map/filter iterators (C speed).
        while rest and rest[0][0] in ("map", "filter"):
            kind, f = rest[0]
            chain = map(f, chain) if kind == "map" else filter(f, chain)
            rest = rest[1:]
        if not rest and sink == "list":
            return _sync_list, [chain, base]
        return _compile(False, tuple(k for k, _ in rest), sink), [
            chain,
            base,
            *(f for _, f in rest),
        ]

    def __aiter__(self) -> AsyncIterator[T]:
        if self._async and not self._steps:
            return cast("AsyncIterator[T]", self._source.__aiter__())
        run, args = self._plan("iter")
        return cast("AsyncIterator[T]", run(*args))

    def __repr__(self) -> str:
        steps = "".join(f".{k.lstrip('a')}({getattr(f, '__name__', f)!s})" for k, f in self._steps)
        return f"{type(self).__name__}({self._source!r}){steps}"

    # -- element-wise operators ----------------------------------------------------------

    @overload
    def map(self, fn: Callable[[T], Awaitable[U]], *, concurrency: int = 1) -> Stream[U]: ...
    @overload
    def map(self, fn: Callable[[T], U], *, concurrency: int = 1) -> Stream[U]: ...
    def map(self, fn: Callable[[T], Any], *, concurrency: int = 1) -> Stream[Any]:
        """Apply ``fn`` to every item.

        Args:
            fn: A sync or async function of one item.
            concurrency: For an async ``fn``, how many calls may run at once. Results keep
                the input order either way.

        Returns:
            The stream of results.

        Raises:
            ConfigurationError: If ``concurrency`` is not a positive integer.
            ConfigurationTypeError: If ``fn`` is not callable.
        """
        fn, is_async = _function("fn", fn)
        require_positive_int("concurrency", concurrency)
        if is_async and concurrency > 1:
            return self._then(_concurrent_map, fn, concurrency)
        return self._step("amap" if is_async else "map", fn)

    def filter(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Keep the items for which ``predicate`` (sync or async) is true.

        Raises:
            ConfigurationTypeError: If ``predicate`` is not callable.
        """
        fn, is_async = _function("predicate", predicate)
        return self._step("afilter" if is_async else "filter", fn)

    def flat_map(
        self, fn: Callable[[T], Iterable[U] | AsyncIterable[U] | Awaitable[Iterable[U]]]
    ) -> Stream[U]:
        """Replace every item by the items of the (sync or async) iterable ``fn`` returns.

        Raises:
            ConfigurationTypeError: If ``fn`` is not callable.
        """
        fn, is_async = _function("fn", fn)
        return self._then(_flat_map, fn, is_async)

    def take(self, n: int) -> Stream[T]:
        """The first ``n`` items; the source is closed as soon as they are read.

        Raises:
            ConfigurationError: If ``n`` is negative.
        """
        return self._then(_take, require_non_negative_int("n", n))

    def skip(self, n: int) -> Stream[T]:
        """Everything after the first ``n`` items.

        Raises:
            ConfigurationError: If ``n`` is negative.
        """
        return self._then(_skip, require_non_negative_int("n", n))

    def take_while(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Items up to (excluding) the first for which ``predicate`` is false; then stop.

        Raises:
            ConfigurationTypeError: If ``predicate`` is not callable.
        """
        fn, is_async = _function("predicate", predicate)
        return self._then(_take_while, fn, is_async)

    def skip_while(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Drop items while ``predicate`` (sync or async) is true, then pass on all the rest.

        Raises:
            ConfigurationTypeError: If ``predicate`` is not callable.
        """
        fn, is_async = _function("predicate", predicate)
        return self._then(_skip_while, fn, is_async)

    @overload
    def scan(self, fn: Callable[[T, T], T | Awaitable[T]]) -> Stream[T]: ...
    @overload
    def scan(self, fn: Callable[[A, T], A | Awaitable[A]], initial: A) -> Stream[A]: ...
    def scan(self, fn: Callable[[Any, T], Any], initial: Any = _MISSING) -> Stream[Any]:
        """Every intermediate value of :meth:`reduce`, as ``itertools.accumulate`` gives them.

        Without ``initial`` the first item is passed on as is and starts the fold; with it,
        ``initial`` is passed on first.

        Raises:
            ConfigurationTypeError: If ``fn`` is not callable.
        """
        fn, is_async = _function("fn", fn)
        return self._then(_scan, fn, is_async, initial)

    def distinct(self, key: Callable[[T], Hashable] | None = None) -> Stream[T]:
        """Drop items already seen (compared by ``key(item)``, or the item itself).

        Memory grows with the number of distinct keys.

        Raises:
            ConfigurationTypeError: If ``key`` is given and not callable.
        """
        if key is not None:
            require_callable("key", key)
        return self._then(_distinct, key)

    def enumerate(self, start: int = 0) -> Stream[tuple[int, T]]:
        """Pair every item with its index: ``(start, item0), (start + 1, item1), ...``.

        Raises:
            ConfigurationTypeError: If ``start`` is not an integer.
        """
        if isinstance(start, bool) or not isinstance(start, int):
            raise ConfigurationTypeError(f"start must be an integer, got {start!r}")
        return self._then(_enumerate, start)

    # -- grouping ------------------------------------------------------------------------

    def batch(self, size: int, timeout: float | None = None) -> Stream[list[T]]:
        """Group items into lists of ``size``; the last partial list is flushed at the end.

        Args:
            size: Items per batch.
            timeout: If given, a batch is also emitted ``timeout`` seconds (loop time) after
                its first item arrived, full or not: a size-or-timeout batcher.

        Raises:
            ConfigurationError: If ``size`` or ``timeout`` is not positive.
        """
        require_positive_int("size", size)
        if timeout is None:
            return self._then(_batch, size)
        return self._then(_timed_batch, size, require_positive("timeout", timeout))

    def batch_by_time(self, seconds: float) -> Stream[list[T]]:
        """Group items into lists emitted ``seconds`` (loop time) after each list's first item.

        Empty lists are never emitted; the last list is flushed when the input ends.

        Raises:
            ConfigurationError: If ``seconds`` is not positive.
        """
        return self._then(_timed_batch, None, require_positive("seconds", seconds))

    def window(self, size: int, step: int = 1) -> Stream[list[T]]:
        """Sliding windows: lists of ``size`` consecutive items, starting every ``step`` items.

        Windows shorter than ``size`` (a short input, the tail) are not emitted.

        Raises:
            ConfigurationError: If ``size`` or ``step`` is not a positive integer.
        """
        require_positive_int("size", size)
        require_positive_int("step", step)
        return self._then(_window, size, step)

    # -- timing --------------------------------------------------------------------------

    def throttle(self, rate: float, per: float = 1.0) -> Stream[T]:
        """Let at most ``rate`` items through per ``per`` seconds, evenly spaced; never drops.

        Raises:
            ConfigurationError: If ``rate`` is not positive, or ``per`` is not a positive
                finite number (an infinite period would never let an item through).
        """
        require_positive("rate", rate)
        if require_positive("per", per) == math.inf:
            raise ConfigurationError("per must be a finite number of seconds, got inf")
        return self._then(_throttle, per / rate)

    def timeout(self, seconds: float) -> Stream[T]:
        """Fail if the next item takes longer than ``seconds`` (loop time) to arrive.

        Each item, the first included, must come within ``seconds`` of the previous one (of
        the start of the iteration for the first); the time the consumer takes between two
        items does not count.

        Raises:
            ConfigurationError: If ``seconds`` is not positive.
            TimeoutError: ``mtaio.exceptions.TimeoutError`` (also the builtin), from the
                iteration, when an item is late; the source is closed.
        """
        return self._then(_timeout, require_positive("seconds", seconds))

    def debounce(self, seconds: float) -> Stream[T]:
        """Emit an item only once ``seconds`` pass without a newer one (the last is flushed).

        Raises:
            ConfigurationError: If ``seconds`` is not positive.
        """
        return self._then(_debounce, require_positive("seconds", seconds))

    def buffer(self, n: int) -> Stream[T]:
        """Read ahead in a background task (decouples producer and consumer).

        The reader pauses while ``n`` items wait; the consumer takes the waiting items in
        one go, so at most ``2 * n`` items are held.

        Raises:
            ConfigurationError: If ``n`` is not a positive integer.
        """
        return self._then(_buffer, require_positive_int("n", n))

    # -- combining -----------------------------------------------------------------------

    def merge(self, *others: Iterable[T] | AsyncIterable[T]) -> Stream[T]:
        """Interleave this stream with ``others`` in arrival order; ends when all end."""
        return self._then(_merge, [_as_stream(o, "others") for o in others])

    @overload
    def zip(self, other: Iterable[B] | AsyncIterable[B], /) -> Stream[tuple[T, B]]: ...
    @overload
    def zip(
        self, other: Iterable[B] | AsyncIterable[B], other2: Iterable[C] | AsyncIterable[C], /
    ) -> Stream[tuple[T, B, C]]: ...
    @overload
    def zip(
        self,
        other: Iterable[B] | AsyncIterable[B],
        other2: Iterable[C] | AsyncIterable[C],
        other3: Iterable[D] | AsyncIterable[D],
        /,
    ) -> Stream[tuple[T, B, C, D]]: ...
    @overload
    def zip(self, *others: Iterable[Any] | AsyncIterable[Any]) -> Stream[tuple[Any, ...]]: ...
    def zip(self, *others: Iterable[Any] | AsyncIterable[Any]) -> Stream[tuple[Any, ...]]:
        """Tuples of one item from this stream and each of ``others``; ends with the shortest.

        Typed for up to three others: ``Stream[int].zip(["a"])`` is a
        ``Stream[tuple[int, str]]``.
        """
        return self._then(_zip, [_as_stream(o, "others") for o in others])

    def concat(self, *others: Iterable[T] | AsyncIterable[T]) -> Stream[T]:
        """This stream's items, then each of ``others`` in turn."""
        return self._then(_concat, [_as_stream(o, "others") for o in others])

    # -- terminals -----------------------------------------------------------------------

    @overload
    async def reduce(self, fn: Callable[[T, T], T | Awaitable[T]]) -> T: ...
    @overload
    async def reduce(self, fn: Callable[[A, T], A | Awaitable[A]], initial: A) -> A: ...
    async def reduce(self, fn: Callable[[Any, T], Any], initial: Any = _MISSING) -> Any:
        """Fold the stream with ``fn(accumulator, item)`` (sync or async), as ``functools.reduce``.

        Without ``initial`` the first item starts the fold.

        Args:
            fn: A function of the accumulator and the next item.
            initial: The accumulator's first value.

        Returns:
            The last accumulator (``initial`` for an empty stream).

        Raises:
            ConfigurationTypeError: If ``fn`` is not callable.
            TypeError: If the stream is empty and no ``initial`` was given.
        """
        fn, is_async = _function("fn", fn)
        if not self._async and not is_async and all(k in ("map", "filter") for k, _ in self._steps):
            return self._sync_reduce(fn, initial)
        sink = "areduce" if is_async else "reduce"
        run, args = self._plan(sink if initial is not _MISSING else sink + "1")
        result = await run(*args, fn, initial)
        if result is _MISSING:
            raise TypeError("reduce() of an empty stream with no initial value")
        return result

    def _sync_reduce(self, fn: Callable[..., Any], initial: Any) -> Any:
        base = iter(self._source)
        chain: Iterator[Any] = base
        for kind, f in self._steps:
            chain = map(f, chain) if kind == "map" else filter(f, chain)
        try:
            if initial is _MISSING:
                try:
                    return functools.reduce(fn, chain)
                except TypeError as error:
                    if "empty" in str(error):
                        raise TypeError(
                            "reduce() of an empty stream with no initial value"
                        ) from None
                    raise
            return functools.reduce(fn, chain, initial)
        finally:
            close = getattr(base, "close", None)
            if close is not None:
                close()

    async def to_list(self) -> list[T]:
        """Every item, in a list."""
        run, args = self._plan("list")
        return cast("list[T]", await run(*args))

    async def count(self) -> int:
        """The number of items."""
        run, args = self._plan("count")
        return cast("int", await run(*args))

    @overload
    async def first(self) -> T: ...
    @overload
    async def first(self, default: D) -> T | D: ...
    async def first(self, default: Any = _MISSING) -> Any:
        """The first item (the source is closed after it).

        Args:
            default: Returned when the stream is empty (``first(None)`` is ``T | None``).

        Raises:
            StreamError: If the stream is empty and no ``default`` was given.
        """
        run, args = self._plan("first")
        result = await run(*args, default)
        if result is _MISSING:
            raise StreamError("first() on an empty stream (pass default= to allow it)")
        return result

    @overload
    async def last(self) -> T: ...
    @overload
    async def last(self, default: D) -> T | D: ...
    async def last(self, default: Any = _MISSING) -> Any:
        """The last item (the whole stream is read).

        Args:
            default: Returned when the stream is empty.

        Raises:
            StreamError: If the stream is empty and no ``default`` was given.
        """
        run, args = self._plan("last")
        result = await run(*args, default)
        if result is _MISSING:
            raise StreamError("last() on an empty stream (pass default= to allow it)")
        return result


async def _sync_list(chain: Iterator[Any], base: Iterator[Any]) -> list[Any]:
    try:
        return list(chain)
    finally:
        close = getattr(base, "close", None)
        if close is not None:
            close()


def _as_stream(source: Any, name: str) -> Stream[Any]:
    if isinstance(source, Stream):
        return source
    if hasattr(source, "__aiter__") or hasattr(source, "__iter__"):
        return Stream(source)
    raise ConfigurationTypeError(f"{name} must be iterables or async iterables, got {source!r}")


# -- operator generators ---------------------------------------------------------------
# Each takes the upstream stream first, opens it with __aiter__ and closes it in `finally`:
# stopping early (take, first, a consumer that breaks) must close the source, not leave it
# suspended until garbage collection.


async def _concurrent_map(
    up: Stream[Any], fn: Callable[[Any], Awaitable[Any]], concurrency: int
) -> AsyncIterator[Any]:
    gen = ordered_map(up.__aiter__(), fn, concurrency)
    try:
        async for item in gen:
            yield item
    finally:
        await gen.aclose()


async def _flat_map(
    up: Stream[Any], fn: Callable[[Any], Any], is_async: bool
) -> AsyncIterator[Any]:
    it = up.__aiter__()
    try:
        async for item in it:
            inner = fn(item)
            if is_async:
                inner = await inner
            if hasattr(inner, "__aiter__"):
                async for out in inner:
                    yield out
            else:
                for out in inner:
                    yield out
    finally:
        await aclose(it)


async def _take(up: Stream[Any], n: int) -> AsyncIterator[Any]:
    if n == 0:
        return
    it = up.__aiter__()
    try:
        async for item in it:
            yield item
            n -= 1
            if n == 0:
                return
    finally:
        await aclose(it)


async def _skip(up: Stream[Any], n: int) -> AsyncIterator[Any]:
    it = up.__aiter__()
    try:
        async for item in it:
            if n:
                n -= 1
                continue
            yield item
    finally:
        await aclose(it)


async def _take_while(
    up: Stream[Any], fn: Callable[[Any], Any], is_async: bool
) -> AsyncIterator[Any]:
    it = up.__aiter__()
    try:
        async for item in it:
            ok = fn(item)
            if is_async:
                ok = await ok
            if not ok:
                return
            yield item
    finally:
        await aclose(it)


async def _skip_while(
    up: Stream[Any], fn: Callable[[Any], Any], is_async: bool
) -> AsyncIterator[Any]:
    it = up.__aiter__()
    try:
        async for item in it:
            ok = fn(item)
            if is_async:
                ok = await ok
            if not ok:
                yield item
                break
        async for item in it:
            yield item
    finally:
        await aclose(it)


async def _scan(
    up: Stream[Any], fn: Callable[[Any, Any], Any], is_async: bool, acc: Any
) -> AsyncIterator[Any]:
    it = up.__aiter__()
    try:
        if acc is not _MISSING:
            yield acc
        async for item in it:
            if acc is _MISSING:
                acc = item
            else:
                acc = fn(acc, item)
                if is_async:
                    acc = await acc
            yield acc
    finally:
        await aclose(it)


async def _timeout(up: Stream[Any], seconds: float) -> AsyncIterator[Any]:
    it = up.__aiter__()
    try:
        while True:
            scope = asyncio.timeout(seconds)
            try:
                async with scope:
                    item = await it.__anext__()
            except StopAsyncIteration:
                return
            except builtins.TimeoutError as error:
                if scope.expired():
                    raise MTAIOTimeoutError(
                        f"no item within {seconds} s", timeout=seconds
                    ) from error
                raise
            yield item
    finally:
        await aclose(it)


async def _distinct(up: Stream[Any], key: Callable[[Any], Any] | None) -> AsyncIterator[Any]:
    seen: set[Any] = set()
    add = seen.add
    it = up.__aiter__()
    try:
        async for item in it:
            k = item if key is None else key(item)
            if k not in seen:
                add(k)
                yield item
    finally:
        await aclose(it)


async def _enumerate(up: Stream[Any], start: int) -> AsyncIterator[tuple[int, Any]]:
    counter = itertools.count(start)
    it = up.__aiter__()
    try:
        async for item in it:
            yield next(counter), item
    finally:
        await aclose(it)


async def _batch(up: Stream[Any], size: int) -> AsyncIterator[list[Any]]:
    batch: list[Any] = []
    it = up.__aiter__()
    try:
        async for item in it:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        await aclose(it)


async def _window(up: Stream[Any], size: int, step: int) -> AsyncIterator[list[Any]]:
    # Window k covers items [k*step, k*step + size): it is complete when its last item
    # arrives, and the deque always holds the latest `size` items.
    window: deque[Any] = deque(maxlen=size)
    append = window.append
    countdown = size
    it = up.__aiter__()
    try:
        async for item in it:
            append(item)
            countdown -= 1
            if not countdown:
                yield list(window)
                countdown = step
    finally:
        await aclose(it)


async def _timed_batch(
    up: Stream[Any], size: int | None, seconds: float
) -> AsyncIterator[list[Any]]:
    loop = asyncio.get_running_loop()
    it = up.__aiter__()
    batch: list[Any] = []
    deadline = 0.0
    pending: asyncio.Task[Any] | None = None
    try:
        while True:
            if pending is None and not batch:
                # Nothing is waiting to be flushed: read without a task or a timeout.
                item = await next_or_end(it)
            else:
                if pending is None:
                    pending = loop.create_task(next_or_end(it))
                if batch:
                    timeout = max(0.0, deadline - loop.time())
                    done, _ = await asyncio.wait((pending,), timeout=timeout)
                    if not done:
                        # The read stays pending; the next batch starts with its item.
                        out, batch = batch, []
                        yield out
                        continue
                else:
                    await asyncio.wait((pending,))
                item = pending.result()
                pending = None
            if item is END:
                break
            if not batch:
                deadline = loop.time() + seconds
            batch.append(item)
            if size is not None and len(batch) >= size:
                out, batch = batch, []
                yield out
        if batch:
            yield batch
    finally:
        if pending is not None:
            await cancel_and_wait([pending])
        await aclose(it)


async def _throttle(up: Stream[Any], interval: float) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    allowed_at = float("-inf")
    it = up.__aiter__()
    try:
        async for item in it:
            now = loop.time()
            if now < allowed_at:
                await asyncio.sleep(allowed_at - now)
                now = allowed_at
            allowed_at = now + interval
            yield item
    finally:
        await aclose(it)


async def _debounce(up: Stream[Any], seconds: float) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    it = up.__aiter__()
    held: Any = END
    pending: asyncio.Task[Any] | None = None
    try:
        while True:
            if held is END and pending is None:
                item = await next_or_end(it)
            else:
                if pending is None:
                    pending = loop.create_task(next_or_end(it))
                if held is END:
                    item = await pending
                else:
                    done, _ = await asyncio.wait((pending,), timeout=seconds)
                    if not done:
                        out, held = held, END
                        yield out
                        continue
                    item = pending.result()
                pending = None
            if item is END:
                break
            held = item
        if held is not END:
            yield held
    finally:
        if pending is not None:
            await cancel_and_wait([pending])
        await aclose(it)


async def _buffer(up: Stream[Any], n: int) -> AsyncIterator[Any]:
    gen = buffered(up.__aiter__(), n)
    try:
        async for item in gen:
            yield item
    finally:
        await gen.aclose()


async def _merge(up: Stream[Any], others: list[Stream[Any]]) -> AsyncIterator[Any]:
    loop = asyncio.get_running_loop()
    iterators = [s.__aiter__() for s in (up, *others)]
    tasks: dict[asyncio.Task[Any], int] = {
        loop.create_task(next_or_end(it)): i for i, it in enumerate(iterators)
    }
    try:
        while tasks:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # Deterministic among simultaneous arrivals: the earlier source first.
            for task in sorted(done, key=tasks.__getitem__):
                index = tasks.pop(task)
                item = task.result()
                if item is END:
                    continue
                tasks[loop.create_task(next_or_end(iterators[index]))] = index
                yield item
    finally:
        await cancel_and_wait(list(tasks))
        for it in iterators:
            await aclose(it)


async def _zip(up: Stream[Any], others: list[Stream[Any]]) -> AsyncIterator[tuple[Any, ...]]:
    iterators = [s.__aiter__() for s in (up, *others)]
    try:
        while True:
            row = []
            for it in iterators:
                item = await next_or_end(it)
                if item is END:
                    return
                row.append(item)
            yield tuple(row)
    finally:
        for it in iterators:
            await aclose(it)


async def _concat(up: Stream[Any], others: list[Stream[Any]]) -> AsyncIterator[Any]:
    for stream in (up, *others):
        it = stream.__aiter__()
        try:
            async for item in it:
                yield item
        finally:
            await aclose(it)
