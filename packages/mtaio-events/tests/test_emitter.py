import asyncio
import logging
from typing import Any

import pytest

from mtaio.events import EmitterStats, Event, EventEmitter, EventPriority
from mtaio.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    EventHandlerError,
    MTAIOError,
)


async def test_on_as_decorator_and_call_with_sync_and_async_handlers() -> None:
    emitter = EventEmitter()
    seen: list[tuple[str, Any]] = []

    @emitter.on("a")
    async def first(event: Event[Any]) -> None:
        seen.append(("async", event.data))

    def second(event: Event[Any]) -> None:
        seen.append(("sync", event.data))

    assert emitter.on("a", second) is second
    await emitter.emit("a", 1)
    assert seen == [("async", 1), ("sync", 1)]


async def test_sync_handler_returning_awaitable_is_awaited() -> None:
    emitter = EventEmitter()
    seen: list[int] = []

    async def work(value: int) -> None:
        seen.append(value)

    emitter.on("a", lambda event: work(event.data))
    await emitter.emit("a", 5)
    assert seen == [5]


async def test_emit_without_listeners_is_a_no_op() -> None:
    emitter = EventEmitter()
    await emitter.emit("nobody")
    assert emitter.stats() == EmitterStats(emitted=1, delivered=0, failures=0, listeners=0)


async def test_priority_order_with_monitor_last_and_ties_in_registration_order() -> None:
    emitter = EventEmitter()
    order: list[str] = []

    def record(label: str) -> Any:
        async def handler(event: Event[Any]) -> None:
            order.append(label)

        return handler

    emitter.on("e", record("monitor"), priority=EventPriority.MONITOR)
    emitter.on("e", record("low"), priority=EventPriority.LOW)
    emitter.on("e", record("normal-1"))
    emitter.on("*", record("wild-highest"), priority=EventPriority.HIGHEST)
    emitter.on("e", record("normal-2"))
    emitter.on("e", record("lowest"), priority=EventPriority.LOWEST)
    emitter.on("e", record("high"), priority=EventPriority.HIGH)
    emitter.on("e", record("int-90"), priority=90)
    await emitter.emit("e")
    assert order == [
        "wild-highest",
        "int-90",
        "high",
        "normal-1",
        "normal-2",
        "low",
        "lowest",
        "monitor",
    ]


@pytest.mark.parametrize("sync", [True, False])
async def test_stop_propagation_skips_lower_priorities(sync: bool) -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    if sync:

        def stopper(event: Event[Any]) -> None:
            seen.append("stopper")
            event.stop_propagation()

    else:

        async def stopper(event: Event[Any]) -> None:  # type: ignore[misc]
            seen.append("stopper")
            event.propagate = False

    async def later(event: Event[Any]) -> None:
        seen.append("later")

    emitter.on("e", later, priority=EventPriority.LOW)
    emitter.on("e", stopper, priority=EventPriority.HIGH)
    await emitter.emit("e")
    assert seen == ["stopper"]
    assert emitter.stats().delivered == 1
    seen.clear()
    await emitter.emit("e")  # a fresh event: propagation is per event
    assert seen == ["stopper"]


async def test_wildcards_and_patterns() -> None:
    emitter = EventEmitter()
    seen: list[tuple[str, str]] = []
    emitter.on("*", lambda e: seen.append(("*", e.name)))
    emitter.on("user.*", lambda e: seen.append(("user.*", e.name)))
    emitter.on("user.**", lambda e: seen.append(("user.**", e.name)))
    emitter.on("user.login", lambda e: seen.append(("exact", e.name)))
    await emitter.emit("user.login")
    await emitter.emit("user.login.failed")
    await emitter.emit("system.boot")
    assert seen == [
        ("*", "user.login"),
        ("user.*", "user.login"),
        ("user.**", "user.login"),
        ("exact", "user.login"),
        ("*", "user.login.failed"),
        ("user.**", "user.login.failed"),
        ("*", "system.boot"),
    ]


async def test_pattern_registered_after_first_emit_is_seen() -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    emitter.on("a.b", lambda e: seen.append("exact"))
    await emitter.emit("a.b")
    emitter.on("a.*", lambda e: seen.append("pattern"))
    await emitter.emit("a.b")
    emitter.off("a.*", emitter.listeners("a.*")[0])
    await emitter.emit("a.b")
    assert seen == ["exact", "exact", "pattern", "exact"]


async def test_cost_does_not_depend_on_other_names() -> None:
    emitter = EventEmitter()
    calls: list[str] = []
    for i in range(1000):
        emitter.on(f"other.{i}", lambda e: calls.append("other"))
    emitter.on("target", lambda e: calls.append("target"))
    await emitter.emit("target")
    # the plan of "target" is one cached tuple, whatever else is registered
    assert calls == ["target"]
    assert len(emitter._plans["target"]) == 1


async def test_plan_cache_is_bounded() -> None:
    emitter = EventEmitter()
    for i in range(5000):
        await emitter.emit(f"name.{i}")
    assert len(emitter._plans) <= 4096


async def test_once_fires_once_even_when_emits_overlap() -> None:
    emitter = EventEmitter()
    seen: list[int] = []
    gate = asyncio.Event()

    @emitter.once("e")
    async def handler(event: Event[Any]) -> None:
        seen.append(event.data)
        await gate.wait()

    first = asyncio.create_task(emitter.emit("e", 1))
    await asyncio.sleep(0)
    await emitter.emit("e", 2)  # concurrent, not blocked by the first one (no lock)
    gate.set()
    await first
    await emitter.emit("e", 3)
    assert seen == [1]
    assert emitter.listener_count("e") == 0


async def test_once_as_call_and_many() -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    emitter.once("e", lambda e: seen.append("once"))
    emitter.many("e", 2, lambda e: seen.append("twice"))

    @emitter.many("e", 3)
    def thrice(event: Event[Any]) -> None:
        seen.append("thrice")

    for _ in range(4):
        await emitter.emit("e")
    assert seen.count("once") == 1
    assert seen.count("twice") == 2
    assert seen.count("thrice") == 3
    assert emitter.listener_count() == 0


async def test_on_with_times() -> None:
    emitter = EventEmitter()
    seen: list[int] = []
    emitter.on("e", lambda e: seen.append(e.data), times=2)
    for i in range(3):
        await emitter.emit("e", i)
    assert seen == [0, 1]


async def test_once_pattern_listener() -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    emitter.once("a.*", lambda e: seen.append(e.name))
    await emitter.emit("a.x")
    await emitter.emit("a.y")
    assert seen == ["a.x"]


async def test_off_remove_listener_and_remove_all() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def a(event: Event[Any]) -> None:
        seen.append("a")

    def b(event: Event[Any]) -> None:
        seen.append("b")

    emitter.on("e", a)
    emitter.on("e", a)
    emitter.on("e", b)
    emitter.on("f", b)
    assert emitter.listeners("e") == [a, a, b]
    assert emitter.listener_count("e") == 3
    assert emitter.listener_count() == 4
    assert emitter.off("e", a) is True
    assert emitter.off("e", a) is False
    assert emitter.off("missing", a) is False
    assert emitter.listeners("e") == [b]
    await emitter.emit("e")
    assert seen == ["b"]
    assert emitter.remove_listener("e", b) is True
    assert emitter.event_names() == ["f"]
    emitter.on("g.*", a)
    emitter.remove_all_listeners("f")
    emitter.remove_all_listeners("nothing")
    assert emitter.event_names() == ["g.*"]
    emitter.remove_all_listeners()
    assert emitter.listener_count() == 0
    await emitter.emit("g.x")
    assert seen == ["b"]


async def test_off_bound_methods_compare_equal() -> None:
    emitter = EventEmitter()

    class Owner:
        def __init__(self) -> None:
            self.seen = 0

        def handle(self, event: Event[Any]) -> None:
            self.seen += 1

    owner = Owner()
    emitter.on("e", owner.handle)
    assert emitter.off("e", owner.handle) is True
    await emitter.emit("e")
    assert owner.seen == 0


async def test_listener_added_during_emit_runs_next_time() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    def late(event: Event[Any]) -> None:
        seen.append("late")

    @emitter.on("e")
    def adder(event: Event[Any]) -> None:
        seen.append("adder")
        emitter.on("e", late)

    await emitter.emit("e")
    assert seen == ["adder"]


async def test_reentrant_emit_from_a_handler() -> None:
    emitter = EventEmitter()
    processed: list[dict[str, Any]] = []

    @emitter.on("user_action")
    async def handle_user_action(event: Event[Any]) -> None:
        await asyncio.sleep(0)
        await emitter.emit("processed_action", {**event.data, "ok": True})

    @emitter.on("processed_action")
    async def done(event: Event[Any]) -> None:
        processed.append(event.data)

    await asyncio.wait_for(emitter.emit("user_action", {"user_id": 1}), timeout=1)
    assert processed == [{"user_id": 1, "ok": True}]


async def test_deep_recursion_through_handlers() -> None:
    emitter = EventEmitter()
    seen: list[int] = []

    @emitter.on("count")
    async def count(event: Event[Any]) -> None:
        seen.append(event.data)
        if event.data < 20:
            await emitter.emit("count", event.data + 1)

    await emitter.emit("count", 0)
    assert seen == list(range(21))


async def test_independent_emits_run_concurrently() -> None:
    emitter = EventEmitter()
    started = asyncio.Event()
    release = asyncio.Event()

    @emitter.on("slow")
    async def slow(event: Event[Any]) -> None:
        started.set()
        await release.wait()

    fast_seen: list[int] = []
    emitter.on("fast", lambda e: fast_seen.append(e.data))
    task = asyncio.create_task(emitter.emit("slow"))
    await started.wait()
    await emitter.emit("fast", 1)  # not held back by the slow emit
    assert fast_seen == [1]
    release.set()
    await task


async def test_handler_registered_as_closure_in_init() -> None:
    class Invalidator:
        def __init__(self) -> None:
            self.store = {"k": "v", "other": "w"}
            self.emitter = EventEmitter()

            @self.emitter.on("data_updated")
            async def invalidate(event: Event[Any]) -> None:
                for key in event.data.get("affected_keys", []):
                    self.store.pop(key, None)

        async def update(self, key: str) -> None:
            await self.emitter.emit("data_updated", {"affected_keys": [key, "missing"]})

    inv = Invalidator()
    await inv.update("k")
    assert inv.store == {"other": "w"}


async def test_failures_raise_handler_error_after_all_handlers_ran() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    async def bad(event: Event[Any]) -> None:
        raise ValueError("bad")

    def worse(event: Event[Any]) -> None:
        raise KeyError("worse")

    emitter.on("e", bad, priority=EventPriority.HIGH)
    emitter.on("e", lambda e: seen.append("ok"))
    emitter.on("e", worse, priority=EventPriority.LOW)
    with pytest.raises(EventHandlerError) as info:
        await emitter.emit("e")
    assert seen == ["ok"]
    assert [type(e) for e in info.value.errors] == [ValueError, KeyError]
    assert info.value.event_name == "e"
    assert isinstance(info.value, MTAIOError)
    assert isinstance(info.value, ExceptionGroup)
    assert info.value.exceptions == info.value.errors
    assert "2 handler(s) failed on event 'e'" in str(info.value)
    assert emitter.stats().failures == 2


async def test_failures_in_fast_path_async_only() -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    async def bad(event: Event[Any]) -> None:
        raise RuntimeError("x")

    async def good(event: Event[Any]) -> None:
        seen.append("good")

    emitter.on("e", bad)
    emitter.on("e", good)
    with pytest.raises(EventHandlerError) as info:
        await emitter.emit("e")
    assert seen == ["good"]
    assert len(info.value.errors) == 1


async def test_error_listener_receives_failures_instead_of_raising() -> None:
    emitter = EventEmitter()
    errors: list[Event[Any]] = []

    async def bad(event: Event[Any]) -> None:
        raise ValueError("boom")

    emitter.on("e", bad)
    emitter.on("error", errors.append)
    await emitter.emit("e", 1)
    assert len(errors) == 1
    assert isinstance(errors[0].data, ValueError)
    assert errors[0].metadata["event"].data == 1
    assert errors[0].metadata["handler"] is bad


async def test_failing_error_listener_raises() -> None:
    emitter = EventEmitter()

    def bad(event: Event[Any]) -> None:
        raise ValueError("first")

    def bad_error_handler(event: Event[Any]) -> None:
        raise RuntimeError("second")

    emitter.on("e", bad)
    emitter.on("error", bad_error_handler)
    with pytest.raises(EventHandlerError) as info:
        await emitter.emit("e")
    assert [type(e) for e in info.value.errors] == [RuntimeError]


async def test_error_policy_raise_even_with_error_listener() -> None:
    emitter = EventEmitter(error_policy="raise")
    errors: list[Event[Any]] = []
    emitter.on("error", errors.append)
    emitter.on("e", lambda e: 1 / 0)
    with pytest.raises(EventHandlerError):
        await emitter.emit("e")
    assert errors == []


async def test_error_policy_log(caplog: pytest.LogCaptureFixture) -> None:
    emitter = EventEmitter(error_policy="log")
    emitter.on("e", lambda e: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="mtaio.events"):
        await emitter.emit("e")
    assert "failed on event 'e'" in caplog.text
    assert emitter.stats().failures == 1


async def test_error_policy_ignore() -> None:
    emitter = EventEmitter(error_policy="ignore")
    emitter.on("e", lambda e: 1 / 0)
    await emitter.emit("e")
    assert emitter.stats().failures == 1


async def test_cancellation_propagates_from_handler() -> None:
    emitter = EventEmitter()

    @emitter.on("e")
    async def waits(event: Event[Any]) -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(emitter.emit("e"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_emit_collect_returns_results_in_order() -> None:
    emitter = EventEmitter()

    async def double(event: Event[int]) -> int:
        return event.data * 2

    emitter.on("n", double, priority=EventPriority.HIGH)
    emitter.on("n", lambda e: e.data + 1)
    emitter.on("n", lambda e: 1 / 0, priority=EventPriority.LOW)
    with pytest.raises(EventHandlerError):
        await emitter.emit_collect("n", 10)
    emitter.remove_all_listeners("n")
    emitter.on("n", double)
    emitter.on("n", lambda e: e.data + 1)
    assert await emitter.emit_collect("n", 10) == [20, 11]


async def test_wait_for_returns_next_matching_event() -> None:
    emitter = EventEmitter()

    async def produce() -> None:
        await asyncio.sleep(0)
        await emitter.emit("job.done", 1)
        await emitter.emit("job.done", 2)

    task = asyncio.create_task(produce())
    event = await emitter.wait_for("job.*", predicate=lambda e: e.data == 2, timeout=5)
    await task
    assert event.data == 2
    assert emitter.listener_count() == 0


@pytest.mark.looptime
async def test_wait_for_timeout_and_no_leak() -> None:
    emitter = EventEmitter()
    with pytest.raises(TimeoutError) as info:
        await emitter.wait_for("never", timeout=2)
    assert isinstance(info.value, MTAIOError)
    assert emitter.listener_count() == 0


async def test_cancelled_wait_for_leaves_no_listener() -> None:
    emitter = EventEmitter()
    task = asyncio.create_task(emitter.wait_for("e"))
    await asyncio.sleep(0)
    assert emitter.listener_count("e") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emitter.listener_count("e") == 0
    await emitter.emit("e")


async def test_stats_counts() -> None:
    emitter = EventEmitter()
    emitter.on("e", lambda e: None)
    emitter.on("e", lambda e: None)
    await emitter.emit("e")
    await emitter.emit("f")
    assert emitter.stats() == EmitterStats(emitted=2, delivered=2, failures=0, listeners=2)


def test_repr() -> None:
    emitter = EventEmitter(name="bus")
    emitter.on("e", lambda e: None)
    assert repr(emitter) == "<EventEmitter 'bus' listeners=1 links=0>"


@pytest.mark.parametrize("bad", ["", 3, None, ["x"]])
async def test_bad_names(bad: Any) -> None:
    emitter = EventEmitter()
    with pytest.raises(ConfigurationError, match="name"):
        emitter.on(bad, lambda e: None)
    with pytest.raises(ConfigurationError, match="name"):
        await emitter.emit(bad)


async def test_bad_arguments() -> None:
    emitter = EventEmitter()
    with pytest.raises(ConfigurationTypeError, match="handler"):
        emitter.on("e", "x")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationTypeError, match="handler"):
        emitter.on("e", True)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationTypeError, match="handler"):
        emitter.once("e", 3)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationTypeError, match="handler"):
        emitter.on("x", 5)  # type: ignore[call-overload]  # a priority goes in priority=
    with pytest.raises(ConfigurationTypeError, match="times"):
        emitter.many("e", None, lambda e: None)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationTypeError, match="handler"):
        emitter.off("e", 5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pattern"):
        await emitter.emit("user.*")
    with pytest.raises(ConfigurationError, match="pattern"):
        await emitter.emit_collect("user.?")
    with pytest.raises(ConfigurationTypeError, match="metadata"):
        await emitter.emit("e", 1, metadata=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="positional"):
        await emitter.emit("x", 1, 2)  # type: ignore[call-arg, arg-type]
    with pytest.raises(ConfigurationTypeError, match="priority"):
        emitter.on("e", lambda e: None, priority="high")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="priority"):
        emitter.on("e", lambda e: None, priority=101)
    with pytest.raises(ConfigurationTypeError, match="priority"):
        emitter.on("e", lambda e: None, priority=True)
    with pytest.raises(ConfigurationError, match="times"):
        emitter.many("e", 0, lambda e: None)
    with pytest.raises(ConfigurationError, match="error_policy"):
        EventEmitter(error_policy="explode")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="name"):
        EventEmitter(name="")
    with pytest.raises(ConfigurationError, match="timeout"):
        await emitter.wait_for("e", timeout=0)
    with pytest.raises(ConfigurationTypeError, match="predicate"):
        await emitter.wait_for("e", predicate=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="other"):
        emitter.pipe("x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="predicate"):
        emitter.filter(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="transform"):
        emitter.map(None)  # type: ignore[arg-type]
    assert emitter.listener_count() == 0


async def test_exhausted_once_listener_in_a_running_plan_is_skipped() -> None:
    emitter = EventEmitter()
    gate = asyncio.Event()
    calls: list[str] = []
    first_call = [True]

    @emitter.on("e", priority=EventPriority.HIGH)
    async def blocker(event: Event[Any]) -> None:
        if first_call[0]:
            first_call[0] = False
            await gate.wait()

    emitter.once("e", lambda e: calls.append(e.data))
    held = asyncio.create_task(emitter.emit("e", "held"))
    await asyncio.sleep(0)  # `held` waits in blocker, its plan still lists the once-handler
    await emitter.emit("e", "second")
    gate.set()
    await held
    assert calls == ["second"]


async def test_async_stop_propagation_in_fast_path_counts_calls() -> None:
    emitter = EventEmitter()

    async def stop(event: Event[Any]) -> None:
        event.stop_propagation()

    async def never(event: Event[Any]) -> None:
        raise AssertionError

    emitter.on("e", stop)
    emitter.on("e", never)
    emitter.on("e", never)
    await emitter.emit("e")
    assert emitter.stats().delivered == 1


async def test_the_decorator_form_takes_a_keyword_priority() -> None:
    emitter = EventEmitter()
    order: list[str] = []

    @emitter.on("e", priority=EventPriority.LOW)
    def low(event: Event[Any]) -> None:
        order.append("low")

    @emitter.on("e", priority=EventPriority.HIGHEST)
    async def top(event: Event[Any]) -> None:
        order.append("top")

    await emitter.emit("e")
    assert order == ["top", "low"]
    with pytest.raises(ConfigurationTypeError, match="handler"):
        emitter.on("e", EventPriority.HIGH)  # type: ignore[call-overload]
    assert emitter.listener_count("e") == 2


async def test_wildcard_listener_does_not_swallow_failures() -> None:
    emitter = EventEmitter()
    seen: list[str] = []
    emitter.on("*", lambda e: seen.append(e.name))
    emitter.on("e", lambda e: 1 / 0)
    with pytest.raises(EventHandlerError):
        await emitter.emit("e")
    assert seen == ["e"]


async def test_error_event_stays_on_its_emitter_and_reaches_wildcards() -> None:
    source, downstream = EventEmitter(), EventEmitter()
    source.pipe(downstream)
    local: list[str] = []
    remote: list[str] = []
    source.on("error", lambda e: local.append("error"))
    source.on("*", lambda e: local.append(f"*:{e.name}"))
    downstream.on("*", lambda e: remote.append(e.name))
    source.on("job", lambda e: 1 / 0)
    await source.emit("job")
    assert local == ["*:job", "error", "*:error"]
    assert remote == ["job"]


@pytest.mark.parametrize("monitor_is_async", [True, False])
async def test_monitor_runs_after_propagation_stopped(monitor_is_async: bool) -> None:
    emitter = EventEmitter()
    seen: list[str] = []

    async def stopper(event: Event[Any]) -> None:
        seen.append("stopper")
        event.stop_propagation()

    async def low(event: Event[Any]) -> None:
        seen.append("low")

    async def monitor_async(event: Event[Any]) -> None:
        seen.append(f"monitor:{event.propagate}")

    def monitor_sync(event: Event[Any]) -> None:
        seen.append(f"monitor:{event.propagate}")

    emitter.on("e", stopper, priority=EventPriority.HIGH)
    emitter.on("e", low, priority=EventPriority.LOW)
    monitor = monitor_async if monitor_is_async else monitor_sync
    emitter.on("e", monitor, priority=EventPriority.MONITOR)
    waiter = asyncio.create_task(emitter.wait_for("e"))
    await asyncio.sleep(0)
    await emitter.emit("e")
    assert seen == ["stopper", "monitor:False"]
    assert (await waiter).name == "e"
    assert emitter.stats().delivered == 3


async def test_single_async_handler_path_behaves_like_the_general_one() -> None:
    emitter = EventEmitter()
    received: list[Event[Any]] = []

    async def keep(event: Event[Any]) -> str:
        received.append(event)
        return "ignored"

    emitter.on("one", keep)
    await emitter.emit("one", 1)  # builds the plan
    await emitter.emit("one", 2, metadata={"k": "v"})  # takes the single-handler path
    assert "one" in emitter._fast1
    assert [(e.name, e.data, e.metadata) for e in received] == [
        ("one", 1, {}),
        ("one", 2, {"k": "v"}),
    ]
    seen: list[object] = list(received)  # what the handler got, checked at run time
    assert all(isinstance(e, Event) for e in seen)
    assert all(e.propagate for e in received)
    assert received[1] == Event("one", 2, {"k": "v"})
    assert repr(received[1]) == "Event('one', 2, metadata={'k': 'v'})"
    stats = emitter.stats()
    assert (stats.emitted, stats.delivered, stats.failures) == (2, 2, 0)


async def test_single_async_handler_failure_follows_the_error_policy() -> None:
    emitter = EventEmitter()

    async def bad(event: Event[Any]) -> None:
        raise ValueError(event.data)

    emitter.on("e", bad)
    for data in (1, 2):  # first through the general path, then the single-handler one
        with pytest.raises(EventHandlerError) as info:
            await emitter.emit("e", data)
        assert [str(e) for e in info.value.errors] == [str(data)]
    caught: list[Any] = []
    emitter.on("error", lambda event: caught.append((event.data, event.metadata["event"].data)))
    await emitter.emit("e", 3)
    assert [(str(exc), data) for exc, data in caught] == [("3", 3)]
    stats = emitter.stats()
    assert (stats.emitted, stats.delivered, stats.failures) == (4, 4, 3)


async def test_unhashable_name_is_a_clear_error_on_the_hot_path() -> None:
    emitter = EventEmitter()
    with pytest.raises(ConfigurationTypeError, match="name must be a non-empty str"):
        await emitter.emit(["not", "a", "name"])  # type: ignore[arg-type]
