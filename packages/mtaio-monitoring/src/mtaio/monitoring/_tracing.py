"""The decorator's hot path: per-task stacks of open traces and the generated async wrapper.

A traced call costs a few hundred nanoseconds, so every operation on its path counts. Two
choices made here are worth knowing:

* The async wrapper is generated (as :mod:`dataclasses` generates ``__init__``) with the
  decorated function's own parameters, so a call binds its arguments once, the way the
  undecorated function would, instead of packing them into ``*args, **kwargs`` (a tuple
  and a new dict per call, about half an untraced await) and unpacking them again.
* The current task is found the cheapest way each Python offers, chosen once at import:
  one C call on 3.12+; on 3.11, where asking asyncio for the running loop costs a
  ``getpid()`` system call, the task's stack remembers its loop and thread, and is trusted
  while that loop's current task is still its owner in the same thread.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import Any, cast, final

#: The pseudo file name of the generated wrappers (the sampling mode hides their frames).
WRAPPER_FILENAME = "<mtaio.monitoring trace wrapper>"

try:
    from asyncio.tasks import _current_tasks as _TASKS  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a future Python without it
    _TASKS = {}


@final
class _TaskStack:
    """The open traces of one task: the innermost one's id, and the task's name.

    One per task, found through the profiler's ContextVar and set once, at the task's first
    trace: entering and leaving a trace is then two attribute writes instead of a ContextVar
    set and reset (each of which builds a new context mapping). A task created inside a trace
    inherits its creator's context, hence its creator's stack: its first trace sees that the
    stack belongs to another task and starts its own, under the trace its creator has open.

    ``loop`` and ``ident`` (the loop the owner runs on and its thread) serve the Python 3.11
    check; ``ident`` is None when there is no owner task, which makes that check fail.
    """

    __slots__ = ("ident", "loop", "name", "owner", "top")

    def __init__(
        self, owner: asyncio.Task[Any] | None, top: int | None, loop: object | None
    ) -> None:
        self.owner = owner
        self.top = top
        self.name = None if owner is None else owner.get_name()
        self.loop = loop
        self.ident = None if owner is None or loop is None else threading.get_ident()


try:
    from _asyncio import current_task as _c_current_task  # type: ignore[attr-defined]
except ImportError:  # Python 3.11 has none (nor an interpreter without the C accelerator)
    _c_current_task = None
#: Python 3.12+: the C ``current_task`` (it no longer calls ``getpid()``); None on 3.11.
C_CURRENT_TASK: Callable[[], Any] | None = _c_current_task if sys.version_info >= (3, 12) else None
#: The running loop, or None (on 3.11 a ``getpid()`` system call: off the hot path).
running_loop = asyncio.events._get_running_loop
#: A loop's current task (the 3.11 check of the generated wrappers).
tasks_get = _TASKS.get


def current_task() -> asyncio.Task[Any] | None:
    """Return the running task, or None outside one (the slow paths' full lookup)."""
    if C_CURRENT_TASK is not None:  # pragma: no cover - Python 3.12+ (the matrix runs it)
        try:
            return cast("asyncio.Task[Any] | None", C_CURRENT_TASK())
        except RuntimeError:  # no running loop
            return None
    loop = running_loop()
    return None if loop is None else cast("asyncio.Task[Any] | None", tasks_get(loop))


def new_stack(inherited: _TaskStack | None) -> _TaskStack:
    """Return the calling task's own stack (it nests under the one it inherited)."""
    task = current_task()
    if inherited is not None and inherited.owner is task:
        return inherited  # its own after all: a check of the fast path failed (3.11)
    loop = None if task is None else running_loop()
    return _TaskStack(task, None if inherited is None else inherited.top, loop)


# The body of every generated async wrapper. {params}: the decorated function's parameters;
# {args}: the same, passed on. Names start with "_t_" (a function whose parameters use that
# prefix gets the generic *args/**kwargs form); the builtins it uses are bound to such names
# too, so a parameter called "type" or "next" cannot shadow them. Mode (see
# Profiler._update_mode): 2 is the default and checked first, 1 records no task name, 0 is
# disabled, 3 goes through Span.
_TEMPLATE = """\
def _t_make(_t_fn, _t_name, _t_profiler, _t_span, _t_stacks_get, _t_stacks_set, _t_new_stack,
            _t_ids, _t_clock, _t_append, _t_get_ident, _t_tasks_get, _t_current_task,
            _t_next=next, _t_type=type, _t_BaseException=BaseException,
            _t_RuntimeError=RuntimeError):
    async def traced({params}):
        _t_mode = _t_profiler._mode
        if _t_mode != 2:
            if not _t_mode:
                return await _t_fn({args})
            if _t_mode == 3:
                async with _t_span(_t_profiler, _t_name):
                    return await _t_fn({args})
{lookup}
        _t_parent = _t_stack.top
        _t_id = _t_stack.top = _t_next(_t_ids)
        _t_start = _t_clock()
        try:
            _t_result = await _t_fn({args})
        except _t_BaseException as _t_exc:
            _t_end = _t_clock()
            _t_stack.top = _t_parent
            _t_append((_t_id, _t_parent, _t_name, _t_start, _t_end, _t_type(_t_exc).__name__,
                       _t_stack.name if _t_mode == 2 else None))
            raise
        _t_end = _t_clock()
        _t_stack.top = _t_parent
        _t_append((_t_id, _t_parent, _t_name, _t_start, _t_end, None,
                   _t_stack.name if _t_mode == 2 else None))
        return _t_result
    return traced
"""

# Python 3.12+: one C call names the task; the stack is the task's own if it owns it.
_LOOKUP_C = """\
        try:
            _t_task = _t_current_task()
        except _t_RuntimeError:
            _t_task = None
        _t_stack = _t_stacks_get()
        if _t_stack is None or _t_stack.owner is not _t_task:
            _t_stack = _t_new_stack(_t_stack)
            _t_stacks_set(_t_stack)
"""

# Python 3.11: the stack in this context is the running task's own when it was made in this
# thread and its loop's current task is its owner (a loop runs one task at a time, in one
# thread, and a thread runs one loop at a time). Anything else takes the full lookup.
_LOOKUP_311 = """\
        _t_stack = _t_stacks_get()
        if (
            _t_stack is None
            or _t_stack.ident != _t_get_ident()
            or _t_tasks_get(_t_stack.loop) is not _t_stack.owner
        ):
            _t_new = _t_new_stack(_t_stack)
            if _t_new is not _t_stack:
                _t_stack = _t_new
                _t_stacks_set(_t_stack)
"""

#: The parameters of a wrapper that cannot mirror its function's.
GENERIC = ("*args, **kwargs", "*args, **kwargs")
_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_makers: dict[tuple[str, str], Callable[..., Any]] = {}


def signature_source(fn: Callable[..., Any]) -> tuple[str, str]:
    """Return (parameters, arguments passed on) mirroring ``fn``'s own parameters.

    The generic ``*args, **kwargs`` form for anything but a plain function, and for a
    function whose parameters could clash with the wrapper's own names.
    """
    if type(fn) is not FunctionType:
        return GENERIC
    code: CodeType = fn.__code__
    count, kwonly = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames
    positional = list(names[:count])
    keywords = list(names[count : count + kwonly])
    index = count + kwonly
    star = dstar = None
    if code.co_flags & _CO_VARARGS:
        star = names[index]
        index += 1
    if code.co_flags & _CO_VARKEYWORDS:
        dstar = names[index]
    every = [*positional, *keywords, *(n for n in (star, dstar) if n)]
    if any(n.startswith("_t_") or not n.isidentifier() for n in every):
        return GENERIC
    params = list(positional)
    if code.co_posonlyargcount:
        params.insert(code.co_posonlyargcount, "/")
    args = list(positional)
    if star:
        params.append(f"*{star}")
        args.append(f"*{star}")
    elif keywords:
        params.append("*")
    params += keywords
    args += [f"{k}={k}" for k in keywords]
    if dstar:
        params.append(f"**{dstar}")
        args.append(f"**{dstar}")
    return ", ".join(params), ", ".join(args)


def wrapper_maker(params: str, args: str) -> Callable[..., Any]:
    """Return the function that builds async wrappers of this signature (compiled once)."""
    key = (params, args)
    maker = _makers.get(key)
    if maker is None:
        lookup = _LOOKUP_C if C_CURRENT_TASK is not None else _LOOKUP_311
        source = _TEMPLATE.format(params=params, args=args, lookup=lookup)
        namespace: dict[str, Any] = {}
        exec(compile(source, WRAPPER_FILENAME, "exec"), namespace)
        maker = _makers[key] = namespace["_t_make"]
    return maker
