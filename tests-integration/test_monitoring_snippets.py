"""Seed snippet 9 (custom metrics collection) runs verbatim on mtaio.monitoring."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mtaio.monitoring import Alert, ResourceMonitor


@pytest.mark.looptime
async def test_snippet_9_application_monitor(
    seed_snippet: Callable[..., dict[str, Any]],
) -> None:
    ns = seed_snippet(9)
    assert issubclass(ns["ApplicationMonitor"], ResourceMonitor)
    monitor: Any = ns["ApplicationMonitor"]()  # a snippet class: typed by use, not by mypy
    alerts: list[Alert] = []
    monitor.on_alert(alerts.append)
    loop = asyncio.get_running_loop()

    async def request(latency: float) -> None:
        async with monitor.track_request():
            await asyncio.sleep(latency)

    task = asyncio.create_task(monitor.collect_metrics())
    await asyncio.sleep(1)
    assert monitor.metrics.average_response_time == 0.0  # no request yet: the snippet's guard

    await asyncio.gather(request(0.2), request(0.4), request(0.6))
    await asyncio.sleep(60)  # the next collection, one virtual minute later
    assert monitor.metrics.average_response_time == pytest.approx(0.4)
    assert alerts == []

    monitor.metrics.error_count = 101
    t0 = loop.time()
    await asyncio.sleep(60)
    assert [a.message for a in alerts] == ["高いエラー率が検出されました"]
    assert loop.time() - t0 == pytest.approx(60)
    await asyncio.sleep(120)  # still above 100: the snippet alerts at every collection
    assert len(alerts) == 3

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = await monitor.get_current_stats()
    assert stats.request_count == 3
    assert stats.latency_sum == pytest.approx(1.2)
    await monitor.stop()
    assert not monitor.running
