"""What users build from several packages at once, each scenario end to end."""

import asyncio
import itertools
from typing import Any

import pytest

from mtaio.cache import TTLCache, cached
from mtaio.core import TaskExecutor
from mtaio.data import MapStage, Pipeline, Stage
from mtaio.events import Channel, EventEmitter
from mtaio.monitoring import Profiler, ResourceMonitor
from mtaio.resources import RateLimiter


async def test_a_cache_invalidated_by_events() -> None:
    cache: TTLCache[dict[str, Any]] = TTLCache(default_ttl=60.0)
    emitter = EventEmitter()
    loads: list[int] = []

    @cached(cache, key=lambda product_id: f"product:{product_id}")
    async def load_product(product_id: int) -> dict[str, Any]:
        loads.append(product_id)
        return {"id": product_id, "version": len(loads)}

    @emitter.on("product.*")
    async def invalidate(event: Any) -> None:
        await cache.delete(f"product:{event.data['id']}")

    first = await load_product(1)
    assert await load_product(1) == first  # served from the cache
    await emitter.emit("product.updated", {"id": 1})
    second = await load_product(1)  # reloaded after the event

    assert loads == [1, 1]
    assert second["version"] == 2
    assert cache.stats().hits == 1
    await cache.close()


class Normalize(Stage[dict[str, Any], dict[str, Any]]):
    async def process(self, item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "email": item["email"].strip().lower()}


@pytest.mark.looptime
async def test_a_channel_feeding_a_pipeline_under_a_rate_limiter() -> None:
    channel: Channel[dict[str, Any]] = Channel("signups")
    pipeline: Pipeline[dict[str, Any], str] = Pipeline()
    pipeline.add_stage(Normalize()).add_stage(MapStage(lambda user: user["email"]))
    limiter = RateLimiter(rate=5, burst=1)  # the downstream accepts 5 signups a second
    loop = asyncio.get_running_loop()
    done: list[tuple[float, str]] = []
    all_done = asyncio.Event()
    subscriber = await channel.subscribe(["signup.*"], maxsize=100, overflow="block")

    async def consume() -> None:
        async with pipeline:
            async for message in subscriber:
                await limiter.acquire()
                email = await pipeline.process(message.data)
                assert email is not None
                done.append((loop.time(), email))
                if len(done) == 20:
                    all_done.set()

    consumer = asyncio.create_task(consume())
    start = loop.time()
    for i in range(20):
        delivered = await channel.publish({"email": f"  User{i}@Example.COM "}, topic="signup.web")
        assert delivered == 1
    assert await channel.publish({"email": "x"}, topic="billing.paid") == 0  # no such topic
    await all_done.wait()
    await channel.close()
    await consumer

    assert [email for _, email in done] == [f"user{i}@example.com" for i in range(20)]
    # 1 token of burst, then one every 0.2 s: the 20th signup passes at 3.8 s, not before.
    assert done[-1][0] - start == pytest.approx(3.8, abs=0.06)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(done)]
    assert min(gaps) >= 0.2 - 1e-6


async def test_a_task_executor_fan_out_measured_by_monitor_and_profiler() -> None:
    monitor = ResourceMonitor(interval=1.0)
    profiler = Profiler()
    running = 0
    peak = 0

    async def work(i: int) -> int:
        nonlocal running, peak
        async with monitor.track_request("work"), profiler.trace_context("work"):
            running += 1
            peak = max(peak, running)
            try:
                await asyncio.sleep(0)
                if i % 10 == 0:
                    raise ValueError(f"item {i} failed")
                return i * i
            finally:
                running -= 1

    async with TaskExecutor(limit=8) as executor:
        results = await executor.map(work, range(100), limit=8, return_exceptions=True)

    failures = [r for r in results if isinstance(r, ValueError)]
    assert len(failures) == 10
    assert [r for r in results if not isinstance(r, BaseException)] == [
        i * i for i in range(100) if i % 10
    ]
    assert peak <= 8
    stats = await monitor.get_current_stats()
    assert stats.request_count == 100
    assert stats.error_count == 10
    assert stats.latency_sum >= 0.0
    profile = await profiler.get_profile()
    assert profile.stats["work"].count == 100
    await monitor.stop()
    profiler.close()
