import asyncio
import functools
from collections.abc import Awaitable
from typing import Any

import pytest

import mtaio.typing as mt
from mtaio.exceptions import ConfigurationError, ConfigurationTypeError
from mtaio.typing import (
    AsyncCloseable,
    AsyncFactory,
    CacheKey,
    CacheValue,
    Config,
    ConfigProtocol,
    Event,
    EventHandler,
    Factory,
    ManualClock,
    Resource,
    ResourceManager,
    Result,
    call_maybe_async,
    is_async_callable,
)


class Lock:
    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class Connection:
    async def close(self) -> None:
        return None


class Manager:
    async def acquire(self, resource: AsyncCloseable) -> None:
        return None

    async def cleanup(self) -> None:
        return None


class UserEvent:
    name = "user.created"
    data = "payload"


class Unhashable:
    __hash__ = None  # type: ignore[assignment]


def test_runtime_checkable_protocols_accept_conforming_objects() -> None:
    assert isinstance(Lock(), Resource)
    assert isinstance(Connection(), AsyncCloseable)
    assert isinstance(Manager(), ResourceManager)
    assert isinstance(UserEvent(), Event)
    assert isinstance(print, EventHandler)
    assert isinstance("key", CacheKey)
    assert isinstance(object(), CacheValue)
    assert isinstance(dict, Factory)
    assert isinstance(Lock().acquire, AsyncFactory)
    assert isinstance(Config(), ConfigProtocol)


def test_runtime_checkable_protocols_reject_other_objects() -> None:
    assert not isinstance(object(), Resource)
    assert not isinstance(Lock(), AsyncCloseable)
    assert not isinstance(Connection(), ResourceManager)
    assert not isinstance(object(), Event)
    assert not isinstance(42, EventHandler)
    assert not isinstance(Unhashable(), CacheKey)
    assert not isinstance(42, Factory)
    assert not isinstance({}, ConfigProtocol)


async def test_generic_aliases_describe_callables() -> None:
    async def fetch(x: int) -> str:
        return str(x)

    afunc: mt.AsyncFunc[str] = fetch
    coro: mt.CoroFunc[str] = fetch
    acall: mt.AsyncCallable[[int], str] = fetch
    sync: mt.SyncFunc[str] = str
    either: mt.AnyFunc[str] = str
    assert [await afunc(1), await coro(2), await acall(3), sync(4), either(5)] == list("12345")


def test_result_ok_and_fail() -> None:
    ok: Result[int] = Result.ok(3)
    assert ok.success and bool(ok) and ok.value == 3 and ok.error is None
    assert ok.unwrap() == 3
    assert repr(ok) == "Result.ok(3)"
    error = ValueError("no")
    failed: Result[int] = Result.fail(error)
    assert not failed.success and not failed and failed.value is None and failed.error is error
    with pytest.raises(ValueError, match="no"):
        failed.unwrap()
    assert repr(failed) == "Result.fail(ValueError('no'))"


def test_result_equality_and_hash() -> None:
    error = ValueError("x")
    assert Result.ok(1) == Result.ok(1)
    assert Result.ok(1) != Result.ok(2)
    assert Result.fail(error) == Result.fail(error)
    assert Result.fail(error) != Result.fail(ValueError("x"))
    assert Result.ok(1) != 1
    assert len({Result.ok(1), Result.ok(1), Result.fail(error)}) == 2


def test_config_mapping_and_attributes() -> None:
    cfg = Config({"timeout": 5.0}, retries=3)
    assert cfg["timeout"] == 5.0 and cfg.retries == 3 and len(cfg) == 2
    assert cfg.get("missing", 0) == 0
    assert sorted(cfg) == ["retries", "timeout"]
    assert cfg.to_dict() == {"timeout": 5.0, "retries": 3}
    assert cfg.replace(retries=4).retries == 4 and cfg.retries == 3
    assert repr(cfg) == "Config({'timeout': 5.0, 'retries': 3})"
    with pytest.raises(AttributeError, match="Config has no setting 'nope'"):
        _ = cfg.nope
    with pytest.raises(AttributeError, match="immutable"):
        cfg.timeout = 1.0


def test_config_rejects_non_string_keys() -> None:
    with pytest.raises(ConfigurationTypeError, match="Config keys must be str, got 1"):
        Config({1: "x"})  # type: ignore[dict-item]


async def test_call_maybe_async_handles_sync_async_and_returned_awaitables() -> None:
    async def double(x: int) -> int:
        return 2 * x

    def triple(x: int) -> int:
        return 3 * x

    def deferred(x: int) -> Awaitable[int]:
        return double(x)

    assert await call_maybe_async(double, 2) == 4
    assert await call_maybe_async(triple, x=2) == 6
    assert await call_maybe_async(deferred, 5) == 10


def test_is_async_callable_sees_partials_and_async_call() -> None:
    async def coro(a: int, b: int) -> int:
        return a + b

    class AsyncCall:
        async def __call__(self) -> None:
            return None

    class SyncCall:
        def __call__(self) -> None:
            return None

    assert is_async_callable(coro)
    assert is_async_callable(functools.partial(functools.partial(coro, 1), 2))
    assert is_async_callable(AsyncCall())
    assert not is_async_callable(SyncCall())
    assert not is_async_callable(print)
    assert not is_async_callable(42)


def test_manual_clock() -> None:
    clock = ManualClock(10)
    assert clock() == 10.0 and clock.now == 10.0
    assert clock.advance(0.5) == 10.5
    assert clock.tick(1) == 11.5
    assert repr(clock) == "ManualClock(11.5)"
    with pytest.raises(ConfigurationError, match="seconds must be a non-negative number"):
        clock.advance(-1)


def test_manual_clock_drives_loop_free_code() -> None:
    clock = ManualClock()
    deadline = clock() + 5

    def expired() -> bool:
        return clock() >= deadline

    assert not expired()
    clock.advance(5)
    assert expired()


async def test_runtime_checks_look_at_member_names_only() -> None:
    # isinstance() on a runtime-checkable protocol checks that the members exist, not their
    # signatures: asyncio.Lock (whose release is synchronous) still passes as a Resource.
    assert isinstance(asyncio.Lock(), Resource)
    assert isinstance(asyncio.Semaphore(), Resource)


def test_type_variables_and_aliases_are_exported() -> None:
    expected: dict[str, Any] = {
        name: getattr(mt, name) for name in ("T", "T_co", "T_contra", "K", "V", "P")
    }
    assert all(value is not None for value in expected.values())
    assert mt.TimeValue == int | float


def test_publish_module_renames_only_the_portions_own_exports() -> None:
    import types

    private = types.ModuleType("mtaio.example._impl")
    exec("class Widget: ...\ndef make(): ...\nclass Hidden: ...", private.__dict__)
    namespace = {
        "__name__": "mtaio.example",
        "__all__": ("Widget", "make", "Result", "VALUE"),
        "Widget": private.Widget,
        "make": private.make,
        "Hidden": private.Hidden,
        "Result": Result,  # defined elsewhere: left alone
        "VALUE": 3,
    }
    mt.publish_module(namespace)
    assert private.Widget.__module__ == "mtaio.example"
    assert private.make.__module__ == "mtaio.example"
    assert private.Hidden.__module__ == "mtaio.example._impl"  # not exported
    assert Result.__module__ == "mtaio.typing"
