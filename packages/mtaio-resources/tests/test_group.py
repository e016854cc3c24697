from __future__ import annotations

import asyncio
from types import TracebackType

import pytest

import mtaio.typing
from mtaio.exceptions import ResourceError
from mtaio.resources import ResourceGroup, ResourceManager


class CM:
    def __init__(self, name: str, log: list[str], *, fail_enter: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_enter = fail_enter
        self.suppress = False
        self.fail_exit = False
        self.seen: type[BaseException] | None = None

    async def __aenter__(self) -> str:
        if self.fail_enter:
            raise OSError(f"enter {self.name}")
        self.log.append(f"+{self.name}")
        return "value"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self.seen = exc_type
        self.log.append(f"-{self.name}")
        if self.fail_exit:
            raise RuntimeError(f"exit {self.name}")
        return self.suppress


class Closer:
    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail = fail

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.log.append(f"close {self.name}")
        if self.fail:
            raise OSError(f"close {self.name}")


async def test_group_enters_in_order_and_exits_in_reverse() -> None:
    log: list[str] = []
    group = ResourceGroup()
    a = await group.add(CM("a", log))
    assert isinstance(a, CM)
    await group.add(Closer("c", log))
    await group.add(CM("b", log))
    assert len(group) == 3
    assert a in group
    async with group as entered:
        assert entered is group
        assert group.active
        late = await group.add(CM("late", log))
        assert log == ["+a", "+b", "+late"]
    assert log == ["+a", "+b", "+late", "-late", "-b", "close c", "-a"]
    assert not group.active
    assert list(group)[-1] is late


async def test_group_remove_exits_an_entered_resource() -> None:
    log: list[str] = []
    group = ResourceGroup()
    a = await group.add(CM("a", log))
    b = await group.add(CM("b", log))
    await group.remove(a)
    async with group:
        await group.remove(b)
        assert log == ["+b", "-b"]
    assert log == ["+b", "-b"]
    with pytest.raises(ResourceError, match="not in the group"):
        await group.remove(a)


async def test_group_refuses_bad_and_duplicate_resources() -> None:
    group = ResourceGroup()
    with pytest.raises(ResourceError, match="neither"):
        await group.add(object())
    cm = await group.add(CM("a", []))
    with pytest.raises(ResourceError, match="already"):
        await group.add(cm)
    async with group:
        with pytest.raises(ResourceError, match="already entered"):
            await group.__aenter__()
    assert "1 resources" in repr(group)


async def test_group_unwinds_when_one_fails_to_enter() -> None:
    log: list[str] = []
    group = ResourceGroup()
    await group.add(CM("a", log))
    await group.add(CM("bad", log, fail_enter=True))
    await group.add(CM("c", log))
    with pytest.raises(OSError, match="enter bad"):
        async with group:
            pytest.fail("the block must not run")
    assert log == ["+a", "-a"]
    assert not group.active


async def test_group_exits_see_the_body_error_and_may_suppress_it() -> None:
    log: list[str] = []
    group = ResourceGroup()
    outer = await group.add(CM("outer", log))
    inner = await group.add(CM("inner", log))
    inner.suppress = True
    async with group:
        raise ValueError("body")
    assert inner.seen is ValueError
    assert outer.seen is None  # suppressed before it got there


async def test_group_exit_error_replaces_the_body_error() -> None:
    log: list[str] = []
    group = ResourceGroup()
    outer = await group.add(CM("outer", log))
    inner = await group.add(CM("inner", log))
    inner.fail_exit = True
    with pytest.raises(RuntimeError, match="exit inner") as info:
        async with group:
            raise ValueError("body")
    assert isinstance(info.value.__context__, ValueError)
    assert outer.seen is RuntimeError
    assert log == ["+outer", "+inner", "-inner", "-outer"]


async def test_manager_closes_newest_first_and_tries_all() -> None:
    log: list[str] = []
    manager = ResourceManager()
    assert isinstance(manager, mtaio.typing.ResourceManager)
    first = await manager.acquire(Closer("1", log))
    await manager.acquire(Closer("2", log, fail=True))
    await manager.acquire(Closer("3", log))
    assert first in manager
    assert "3 resources" in repr(manager)
    with pytest.raises(OSError, match="close 2"):
        await manager.cleanup()
    assert log == ["close 3", "close 2", "close 1"]
    assert len(manager) == 0


async def test_manager_groups_several_close_errors() -> None:
    manager = ResourceManager()
    await manager.acquire(Closer("1", [], fail=True))
    await manager.acquire(Closer("2", [], fail=True))
    with pytest.raises(BaseExceptionGroup) as info:
        await manager.cleanup()
    assert len(info.value.exceptions) == 2


async def test_manager_release_and_scope() -> None:
    log: list[str] = []
    manager = ResourceManager()
    one = await manager.acquire(Closer("1", log))
    await manager.release(one)
    assert log == ["close 1"]
    with pytest.raises(ResourceError, match="not registered"):
        await manager.release(one)
    with pytest.raises(ResourceError, match="no close"):
        await manager.acquire(object())  # type: ignore[type-var]

    async def body() -> None:
        async with manager.scope() as scoped:
            assert scoped is manager
            await manager.acquire(Closer("2", log))
            raise KeyError("x")

    with pytest.raises(KeyError):
        await body()
    assert log == ["close 1", "close 2"]
