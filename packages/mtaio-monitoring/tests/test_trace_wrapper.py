"""The generated async wrapper of ``Profiler.trace``: arguments, fallbacks, task stacks."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import time
from typing import Any

import pytest

from mtaio.monitoring import Profiler

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08


async def test_the_wrapper_takes_the_functions_own_parameters() -> None:
    # The hot path binds arguments once, as the function would: no *args/**kwargs packing.
    p = Profiler()
    marker: list[int] = []

    async def plain(a: int, b: list[int] = marker, /, c: int = 3, *, d: int, e: int = 5) -> Any:
        return (a, b, c, d, e)

    traced = p.trace(plain)
    code = traced.__code__
    assert code.co_argcount == 3
    assert code.co_posonlyargcount == 2
    assert code.co_kwonlyargcount == 2
    assert not code.co_flags & (_CO_VARARGS | _CO_VARKEYWORDS)
    assert inspect.signature(traced) == inspect.signature(plain)
    assert await traced(1, d=4) == (1, marker, 3, 4, 5)
    assert (await traced(1, d=4))[1] is marker  # the function's own default object
    assert await traced(1, [9], c=7, d=8, e=0) == (1, [9], 7, 8, 0)
    profile = await p.get_profile()
    assert [t.name for t in profile.traces] == [plain.__qualname__] * 3


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),  # missing positional
        ((1, 2, 3, 4), {"d": 1}),  # too many positionals
        ((1,), {"d": 1, "zzz": 2}),  # unknown keyword
        ((1,), {"b": [], "d": 1}),  # positional-only passed by keyword
        ((1,), {}),  # missing keyword-only
    ],
)
async def test_bad_calls_fail_as_the_undecorated_function_does(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    p = Profiler()

    async def plain(a: int, b: list[int] | None = None, /, c: int = 3, *, d: int) -> int:
        return a

    with pytest.raises(TypeError) as expected:
        await plain(*args, **kwargs)
    with pytest.raises(TypeError) as got:
        await p.trace(plain)(*args, **kwargs)
    assert str(got.value) == str(expected.value)
    assert p.trace_count == 0  # refused at the call: nothing was traced


async def test_star_args_and_star_kwargs_are_passed_on() -> None:
    p = Profiler()

    async def spread(x: int, *rest: int, flag: bool = False, **extra: str) -> Any:
        return x, rest, flag, extra

    traced = p.trace(spread)
    assert traced.__code__.co_flags & _CO_VARARGS
    assert traced.__code__.co_flags & _CO_VARKEYWORDS
    assert await traced(1, 2, 3, flag=True, k="v") == (1, (2, 3), True, {"k": "v"})
    assert await traced(x=0) == (0, (), False, {})


async def test_parameters_named_like_builtins_do_not_shadow_the_wrappers() -> None:
    p = Profiler()

    @p.trace(name="shadow")
    async def shadow(type: str, next: int, RuntimeError: object = None) -> str:
        if next < 0:
            raise ValueError(type)
        return type * next

    assert await shadow("ab", 2) == "abab"
    with pytest.raises(ValueError, match="bad"):
        await shadow(type="bad", next=-1)
    traces = (await p.get_profile()).traces
    assert [t.error for t in traces] == [None, "ValueError"]
    assert traces[1].id == traces[0].id + 1


async def test_other_callables_and_clashing_names_take_the_generic_form() -> None:
    p = Profiler()

    async def add(a: int, b: int) -> int:
        return a + b

    class Adder:
        async def __call__(self, a: int) -> int:
            return a + 100

        async def method(self, a: int) -> int:
            return a + 1000

    async def clash(_t_fn: int, _t_mode: int = 2) -> int:  # the wrapper's own names
        return _t_fn * _t_mode

    partial = p.trace(name="partial")(functools.partial(add, 1))
    bound = p.trace(name="bound")(Adder().method)
    traced_clash = p.trace(clash)
    for generic in (partial, bound, traced_clash):
        code = getattr(generic, "__code__")  # noqa: B009 - a partial is typed without one
        assert code.co_flags & _CO_VARARGS  # *args, **kwargs
    assert await partial(2) == 3
    assert await bound(1) == 1001
    assert await traced_clash(3) == 6
    assert await traced_clash(3, _t_mode=3) == 9
    profile = await p.get_profile()
    assert [t.name for t in profile.traces] == ["partial", "bound"] + [clash.__qualname__] * 2


async def test_disabled_and_stack_modes_still_pass_arguments() -> None:
    p = Profiler(enabled=False)

    @p.trace(name="f")
    async def f(a: int, *, b: int = 2) -> int:
        return a * b

    assert await f(3) == 6
    assert p.trace_count == 0
    p.enabled = True
    p.collect_stack_trace = True
    assert await f(3, b=4) == 12
    p.collect_stack_trace = False
    p.trace_async_tasks = False
    assert await f(1) == 2
    traces = (await p.get_profile()).traces
    assert [t.stack is not None for t in traces] == [True, False]
    assert [t.task for t in traces] == [asyncio.current_task().get_name(), None]  # type: ignore[union-attr]


def test_a_trace_outside_any_task_then_inside_one() -> None:
    # Outside a task the stack has no owner; a task that inherits it starts its own.
    p = Profiler()

    @p.trace(name="step")
    async def step() -> int:
        return 1

    for _ in range(2):
        coro = step()
        with pytest.raises(StopIteration):
            coro.send(None)  # driven by hand: no loop, no task

    async def main() -> None:
        asyncio.current_task().set_name("main")  # type: ignore[union-attr]
        await step()
        await step()

    asyncio.run(main())
    profile = asyncio.run(p.get_profile())
    assert [t.task for t in profile.traces] == [None, None, "main", "main"]
    assert all(t.parent_id is None for t in profile.traces)


def test_a_thread_sharing_a_running_tasks_context_gets_its_own_stack() -> None:
    # A thread runs a loop in a copy of task "owner"'s context while "owner" is in the
    # middle of a step (it waits in join()). The stack in that context is owner's, and
    # owner's loop reports owner as its current task: only the thread check tells the
    # thread's task apart, which must start its own stack (under owner's open trace).
    p = Profiler()
    seen: dict[str, Any] = {}

    @p.trace(name="in_thread")
    async def in_thread() -> None:
        await asyncio.sleep(0)

    async def thread_main() -> None:
        asyncio.current_task().set_name("thread-task")  # type: ignore[union-attr]
        await in_thread()

    @p.trace(name="outer")
    async def outer() -> None:
        ctx = contextvars.copy_context()
        worker = threading.Thread(target=ctx.run, args=(asyncio.run, thread_main()))
        worker.start()
        worker.join()  # blocks owner's step: owner stays its loop's current task
        await after()

    @p.trace(name="after")
    async def after() -> None:
        seen["after_task"] = asyncio.current_task().get_name()  # type: ignore[union-attr]

    async def main() -> None:
        asyncio.current_task().set_name("owner")  # type: ignore[union-attr]
        await outer()

    asyncio.run(main())
    profile = asyncio.run(p.get_profile())
    by_name = {t.name: t for t in profile.traces}
    assert by_name["in_thread"].task == "thread-task"
    assert by_name["in_thread"].parent_id == by_name["outer"].id  # inherited context
    assert by_name["after"].task == "owner"
    assert by_name["after"].parent_id == by_name["outer"].id


async def test_sampling_hides_the_generated_wrapper_frames() -> None:
    profiler = Profiler(sample_interval=0.001)

    def crunch() -> None:
        deadline = time.perf_counter() + 0.15
        while time.perf_counter() < deadline:
            pass

    @profiler.trace(name="decorated")
    async def handler() -> None:
        crunch()

    async with profiler.sampling():
        await handler()
    names = [t.name for t in (await profiler.get_profile()).traces]
    assert "decorated" in names  # the decorator's own trace
    assert any(n.endswith("crunch") for n in names), names  # the sampler's
    assert not any("_t_make" in n or n.endswith("traced") for n in names), names
