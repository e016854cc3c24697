"""Seed snippets 5, 6 and 11 (the resources section of the guide), run verbatim."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Callable
from typing import Any

import pytest

import mtaio.exceptions
import mtaio.typing
from mtaio.resources import ResourceLimiter, ResourceManager, TimeoutManager

Loader = Callable[..., dict[str, Any]]


# -- snippet 5: AdaptiveRateLimiter ------------------------------------------------------


async def _gaps(limiter: Any, resource_id: str, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    stamps = []
    for _ in range(n):
        await limiter.acquire(resource_id)
        stamps.append(loop.time())
    return [b - a for a, b in itertools.pairwise(stamps)]


@pytest.mark.looptime
async def test_snippet5_adaptive_limiter_works_without_super_init(seed_snippet: Loader) -> None:
    ns = seed_snippet(5)
    assert issubclass(ns["AdaptiveRateLimiter"], ResourceLimiter)
    limiter = ns["AdaptiveRateLimiter"]()
    limiter.rates["api"] = 2.0  # 2 calls per second: each costs 1/2 token
    gaps = await _gaps(limiter, "api", 5)
    assert gaps[1:] == pytest.approx([0.5] * 3)


@pytest.mark.looptime
async def test_snippet5_throttles_harder_under_high_load(seed_snippet: Loader) -> None:
    ns = seed_snippet(5)
    limiter = ns["AdaptiveRateLimiter"]()
    limiter.rates["api"] = 2.0
    normal = await _gaps(limiter, "api", 4)

    limiter.adjust_rate("api", 0.85)  # load > 0.8 halves the rate; the stored rate stays
    assert limiter.rates["api"] == 2.0
    loaded = await _gaps(limiter, "api", 4)
    assert loaded[-1] == pytest.approx(2 * normal[-1])
    assert loaded[-1] == pytest.approx(1.0)


@pytest.mark.looptime
async def test_snippet5_adjust_rate_scales_the_stored_rate(seed_snippet: Loader) -> None:
    ns = seed_snippet(5)
    limiter = ns["AdaptiveRateLimiter"]()
    limiter.rates["db"] = 1.0
    limiter.adjust_rate("db", 0.95)  # high load: rate * 0.8 and halved on acquire
    assert limiter.rates["db"] == pytest.approx(0.8)
    gaps = await _gaps(limiter, "db", 3)
    # a call costs 1 / (0.8 * 0.5) = 2.5 tokens from a one-token bucket: paced by the debt
    assert gaps == pytest.approx([2.5, 2.5])
    limiter.adjust_rate("db", 0.2)  # low load: rate * 1.2
    assert limiter.rates["db"] == pytest.approx(0.96)


@pytest.mark.looptime
async def test_snippet5_unknown_id_uses_the_default_rate(seed_snippet: Loader) -> None:
    ns = seed_snippet(5)
    limiter = ns["AdaptiveRateLimiter"]()
    gaps = await _gaps(limiter, "never-set", 3)  # rates.get(id, 1.0): one call per second
    assert gaps == pytest.approx([1.0, 1.0])
    with pytest.raises(KeyError):  # the snippet's own quirk: *= on a missing key
        limiter.adjust_rate("never-set", 0.95)


# -- snippet 6: cascading timeouts -------------------------------------------------------


@pytest.mark.looptime
async def test_snippet6_fast_path(seed_snippet: Loader) -> None:
    ns = seed_snippet(6)
    controller = ns["TimeoutController"]()
    assert isinstance(controller.timeouts, TimeoutManager)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with controller.cascading_timeout([1.0, 2.0, 5.0]):
        await asyncio.sleep(0.5)
    assert loop.time() - start == pytest.approx(0.5)
    await asyncio.sleep(10)  # no stray cancel lands after the block
    assert loop.time() - start == pytest.approx(10.5)


@pytest.mark.looptime
async def test_snippet6_single_timeout_raises_builtin_timeout_error(seed_snippet: Loader) -> None:
    ns = seed_snippet(6)
    controller = ns["TimeoutController"]()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError) as info:
        async with controller.cascading_timeout([1.0]):
            await asyncio.sleep(5)
    assert isinstance(info.value, mtaio.exceptions.TimeoutError)
    assert info.value.timeout == 1.0
    assert loop.time() - start == pytest.approx(1.0)


@pytest.mark.looptime
async def test_snippet6_body_exceeding_the_last_timeout(seed_snippet: Loader) -> None:
    ns = seed_snippet(6)
    controller = ns["TimeoutController"]()
    with pytest.raises(TimeoutError):
        async with controller.cascading_timeout([3.0, 3.0]):
            # the same value twice: the first timeout *is* timeouts[-1] by value
            await asyncio.sleep(5)


@pytest.mark.looptime
async def test_snippet6_non_last_timeout_hits_pythons_limitation(seed_snippet: Loader) -> None:
    """As the guide's notes say: a generator context manager cannot yield a second time."""
    ns = seed_snippet(6)
    controller = ns["TimeoutController"]()
    loop = asyncio.get_running_loop()
    with pytest.raises(RuntimeError, match=r"generator didn't stop after athrow\(\)"):
        async with controller.cascading_timeout([1.0, 2.0]):
            await asyncio.sleep(1.5)
    # the abandoned generator holds the second scope; once it is finalised, its timer is
    # gone and no cancel ever reaches this task
    gc.collect()
    await asyncio.sleep(0)
    start = loop.time()
    await asyncio.sleep(10)
    assert loop.time() - start == pytest.approx(10.0)


@pytest.mark.looptime
async def test_snippet6_working_cascade_falls_back() -> None:
    manager = TimeoutManager()
    loop = asyncio.get_running_loop()
    durations = iter([1.5, 1.5, 0.5])
    seen: list[tuple[float, int]] = []

    async def operation() -> str:
        await asyncio.sleep(next(durations))
        return "done"

    start = loop.time()
    result = await manager.cascade(
        operation, [1.0, 1.0, 2.0], on_timeout=lambda s, n: seen.append((s, n))
    )
    assert result == "done"
    assert seen == [(1.0, 1), (1.0, 2)]
    assert loop.time() - start == pytest.approx(2.5)


# -- snippet 11: ManagedResources ---------------------------------------------------------


class Closeable:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.log.append(self.name)


async def test_snippet11_closes_in_reverse_order(seed_snippet: Loader) -> None:
    ns = seed_snippet(11, "from mtaio.typing import AsyncCloseable\n")
    assert ns["ResourceManager"] is ResourceManager
    managed = ns["ManagedResources"]()
    log: list[str] = []
    async with managed.resource_scope():
        for name in "abc":
            await managed.acquire(Closeable(name, log))
    assert log == ["c", "b", "a"]
    assert managed.resources == []


async def test_snippet11_closes_when_the_body_raises(seed_snippet: Loader) -> None:
    ns = seed_snippet(11, "from mtaio.typing import AsyncCloseable\n")
    managed = ns["ManagedResources"]()
    log: list[str] = []

    async def body() -> None:
        async with managed.resource_scope():
            await managed.acquire(Closeable("a", log))
            await managed.acquire(Closeable("b", log))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await body()
    assert log == ["b", "a"]


async def test_mtaio_resource_manager_satisfies_the_protocol() -> None:
    manager = ResourceManager()
    assert isinstance(manager, mtaio.typing.ResourceManager)
    log: list[str] = []

    async def body() -> None:
        async with manager:
            for name in "xyz":
                await manager.acquire(Closeable(name, log))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await body()
    assert log == ["z", "y", "x"]
    assert len(manager) == 0
