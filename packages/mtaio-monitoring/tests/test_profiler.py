from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from mtaio.exceptions import ConfigurationError, MonitoringError
from mtaio.monitoring import Profile, Profiler, Span
from mtaio.typing import ManualClock


async def test_trace_decorator_forms() -> None:
    p = Profiler()

    @p.trace
    async def bare() -> int:
        return 1

    @p.trace("named")
    async def positional() -> int:
        return 2

    @p.trace(name="kw")
    def sync_kw(x: int) -> int:
        return x * 2

    @p.trace()
    def sync_default() -> str:
        return "ok"

    assert await bare() == 1
    assert await positional() == 2
    assert sync_kw(21) == 42
    assert sync_default() == "ok"
    assert bare.__name__ == "bare"
    profile = await p.get_profile()
    names = [t.name for t in profile.traces]
    assert names == [
        "test_trace_decorator_forms.<locals>.bare",
        "named",
        "kw",
        "test_trace_decorator_forms.<locals>.sync_default",
    ]
    assert all(t.parent_id is None and t.depth == 0 for t in profile.traces)
    assert p.trace_count == 4


def test_trace_bad_input() -> None:
    p = Profiler()
    with pytest.raises(ConfigurationError, match="function or a name"):
        p.trace(42)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="one function"):
        p.trace("a", "b")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="name"):
        p.trace_context("")
    with pytest.raises(ConfigurationError, match="name"):
        p.start_trace(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="span"):
        p.end_trace("nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="span"):
        p.end_trace(Profiler().start_trace("other"))
    with pytest.raises(ConfigurationError, match="max_traces"):
        Profiler(max_traces=0)


async def test_nesting_and_errors_with_manual_clock() -> None:
    clock = ManualClock()
    p = Profiler(clock=clock)

    @p.trace("inner")
    async def inner() -> None:
        clock.advance(1.0)

    @p.trace("failing")
    async def failing() -> None:
        clock.advance(0.5)
        raise ValueError("bad")

    @p.trace("outer")
    async def outer() -> None:
        await inner()
        with p.trace_context("block"):
            clock.advance(2.0)
        with pytest.raises(ValueError, match="bad"):
            await failing()

    await outer()
    profile = await p.get_profile()
    by = {t.name: t for t in profile.traces}
    root = by["outer"]
    assert root.duration == 3.5
    assert root.depth == 0
    assert [c.name for c in profile.children(root)] == ["inner", "block", "failing"]
    assert {by[n].depth for n in ("inner", "block", "failing")} == {1}
    assert by["failing"].error == "ValueError"
    assert profile.stats["failing"].errors == 1
    assert profile.total_time == 3.5
    assert profile.roots == [root]
    assert profile.by_name("inner") == [by["inner"]]
    assert by["outer"].task is not None


async def test_100_concurrent_tasks_keep_their_own_nesting() -> None:
    p = Profiler()

    @p.trace("leaf")
    async def leaf(i: int) -> int:
        await asyncio.sleep(0)
        return i

    @p.trace("job")
    async def job(i: int) -> int:
        await asyncio.sleep(0)
        async with p.trace_context("step"):
            await asyncio.sleep(0)
            value = await leaf(i)
            await asyncio.sleep(0)
        return value

    results = await asyncio.gather(*(asyncio.create_task(job(i), name=f"t{i}") for i in range(100)))
    assert results == list(range(100))
    profile = await p.get_profile()
    assert len(profile.by_name("job")) == 100
    assert len(profile.traces) == 300
    by_id = {t.id: t for t in profile.traces}
    for step in profile.by_name("step"):
        parent = by_id[step.parent_id]  # type: ignore[index]
        assert parent.name == "job"
        assert parent.task == step.task  # same task, never another task's job
        assert step.depth == 1
    for leaf_trace in profile.by_name("leaf"):
        parent = by_id[leaf_trace.parent_id]  # type: ignore[index]
        assert parent.name == "step"
        assert parent.task == leaf_trace.task
        assert leaf_trace.depth == 2
    assert len({t.task for t in profile.by_name("job")}) == 100
    stats = profile.stats["job"]
    assert stats.count == 100
    assert stats.min <= stats.mean <= stats.max
    assert stats.p50 <= stats.p95 <= stats.max


async def test_task_created_inside_a_trace_nests_under_it() -> None:
    p = Profiler()

    @p.trace("child")
    async def child() -> None:
        await asyncio.sleep(0)

    async with p.trace_context("parent") as span:
        await asyncio.create_task(child())
    profile = await p.get_profile()
    (c,) = profile.by_name("child")
    assert c.parent_id == span.id
    assert c.task != profile.by_name("parent")[0].task


async def test_start_and_end_trace() -> None:
    p = Profiler()
    span = p.start_trace("manual")
    assert isinstance(span, Span)
    inner = p.start_trace("inner")
    p.end_trace(inner, error=RuntimeError())
    p.end_trace(span)
    p.end_trace(span)  # second end is a no-op
    profile = await p.get_profile()
    assert [t.name for t in profile.traces] == ["manual", "inner"]
    assert profile.traces[1].parent_id == profile.traces[0].id
    assert profile.traces[1].error == "RuntimeError"
    with pytest.raises(MonitoringError, match="already started"):
        span.__enter__()


async def test_end_trace_in_another_task() -> None:
    p = Profiler()
    span = p.start_trace("handover")

    async def finisher() -> None:
        p.end_trace(span)

    await asyncio.create_task(finisher())
    profile = await p.get_profile()
    assert [t.name for t in profile.traces] == ["handover"]


async def test_disabled_profiler_records_nothing() -> None:
    p = Profiler(False)

    @p.trace
    async def f() -> int:
        return 3

    @p.trace
    def g() -> int:
        return 4

    assert await f() == 3
    assert g() == 4
    with p.trace_context("ctx"):
        pass
    p.end_trace(p.start_trace("x"))
    assert p.trace_count == 0
    p.enabled = True
    assert await f() == 3
    assert p.trace_count == 1


async def test_memory_and_stack_collection() -> None:
    was_tracing = tracemalloc.is_tracing()
    p = Profiler(collect_stack_trace=True, trace_memory=True, stack_limit=5)
    try:

        @p.trace("alloc")
        async def alloc() -> int:
            data = [object() for _ in range(10_000)]
            return len(data)

        @p.trace("sync_alloc")
        def sync_alloc() -> bytes:
            return b"x" * 100_000

        assert await alloc() == 10_000
        kept = sync_alloc()
        profile = await p.get_profile()
        a, s = profile.traces
        assert a.memory_delta is not None
        assert s.memory_delta is not None
        assert s.memory_delta >= 90_000  # the 100 kB result, give or take freed bits
        assert a.stack is not None
        assert any("test_profiler.py" in frame for frame in a.stack)
        assert len(kept) == 100_000
    finally:
        p.close()
        p.close()
    assert tracemalloc.is_tracing() == was_tracing


async def test_max_traces_drops_oldest_and_depth_of_dropped_parent() -> None:
    p = Profiler(max_traces=3)
    with p.trace_context("root"):
        for i in range(5):
            with p.trace_context(f"n{i}"):
                pass
    profile = await p.get_profile()
    assert [(t.name, t.depth) for t in profile.traces] == [("root", 0), ("n3", 1), ("n4", 1)]
    p.clear()
    assert p.trace_count == 0

    p2 = Profiler(max_traces=2)
    with p2.trace_context("a"), p2.trace_context("b"), p2.trace_context("c"):
        pass
    prof2 = await p2.get_profile()  # ended last-first: "c" was dropped
    assert [(t.name, t.depth) for t in prof2.traces] == [("a", 0), ("b", 1)]


async def test_trace_under_a_parent_still_open() -> None:
    p = Profiler()
    span = p.start_trace("open")
    with p.trace_context("x"), p.trace_context("y"):
        pass
    profile = await p.get_profile()  # "open" is not finished: "x" counts as depth 1
    assert [(t.name, t.depth) for t in profile.traces] == [("x", 1), ("y", 2)]
    assert [t.name for t in profile.roots] == ["x"]
    p.end_trace(span)


async def test_profile_rendering() -> None:
    clock = ManualClock()
    p = Profiler(clock=clock)
    for d in (1.0, 2.0, 3.0):
        with p.trace_context("work"):
            clock.advance(d)
    profile = await p.get_profile()
    s = profile.stats["work"]
    assert (s.count, s.total, s.mean, s.min, s.max) == (3, 6.0, 2.0, 1.0, 3.0)
    assert s.p95 == pytest.approx(2.9)
    data = profile.to_dict()
    assert data["stats"]["work"]["count"] == 3
    assert len(data["traces"]) == 3
    text = profile.format()
    assert "work" in text
    assert "total time: 6.0000 s" in text
    empty = await Profiler().get_profile()
    assert empty == Profile((), 0.0, {})


async def test_threads_and_methods() -> None:
    p = Profiler()

    class Service:
        @p.trace
        def work(self, n: int) -> int:
            with p.trace_context("inner"):
                return n + 1

    svc = Service()
    results = await asyncio.gather(*(asyncio.to_thread(svc.work, i) for i in range(8)))
    assert results == list(range(1, 9))
    profile = await p.get_profile()
    works = profile.by_name("test_threads_and_methods.<locals>.Service.work")
    assert len(works) == 8
    assert all(t.task is None for t in profile.traces)  # no asyncio task in a worker thread
    by_id = {t.id: t for t in profile.traces}
    for inner in profile.by_name("inner"):
        assert inner.parent_id is not None
        assert by_id[inner.parent_id].name.endswith("Service.work")


def test_loops_in_several_threads_keep_their_own_task_names() -> None:
    # The current-task lookup caches each thread's loop (Python 3.11): it must never hand
    # one thread's task to another, nor a loop's task after that loop stopped.
    import threading

    profiler = Profiler()

    @profiler.trace(name="leaf")
    async def leaf() -> None:
        await asyncio.sleep(0)

    @profiler.trace(name="job")
    async def job() -> None:
        for _ in range(50):
            await leaf()

    def thread_main(n: int) -> None:
        async def main(run: int) -> None:
            await asyncio.create_task(job(), name=f"thread{n}-run{run}")

        for run in range(2):  # a second loop in the same thread: the cache is refreshed
            asyncio.run(main(run))

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    profile = asyncio.run(profiler.get_profile())
    by_id = {t.id: t for t in profile.traces}
    leaves = profile.by_name("leaf")
    assert len(leaves) == 3 * 2 * 50
    for leaf_trace in leaves:
        parent = by_id[leaf_trace.parent_id]  # type: ignore[index]
        assert parent.name == "job"
        assert parent.task == leaf_trace.task
    assert {t.task for t in profile.by_name("job")} == {
        f"thread{n}-run{r}" for n in range(3) for r in range(2)
    }
