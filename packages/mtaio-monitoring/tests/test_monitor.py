from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
from typing import TYPE_CHECKING, Any

import pytest

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, MonitoringError
from mtaio.monitoring import (
    SYSTEM_METRICS,
    Alert,
    MonitorStats,
    PsutilReader,
    ResourceMonitor,
    SystemStats,
    Threshold,
)

if TYPE_CHECKING:
    from conftest import FakeReader


def make(reader: FakeReader, **kw: Any) -> ResourceMonitor:
    return ResourceMonitor(reader=reader, clock=reader.clock, wall_clock=lambda: 1.0e9, **kw)


def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mtaio-monitor")]


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, -1, math.inf])
def test_bad_interval(interval: float) -> None:
    with pytest.raises(ConfigurationError, match="interval"):
        ResourceMonitor(interval=interval)


def test_bad_interval_type() -> None:
    with pytest.raises(ConfigurationTypeError, match="interval"):
        ResourceMonitor(interval="1")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -5])
def test_bad_history_size(size: int) -> None:
    with pytest.raises(ConfigurationError, match="history_size"):
        ResourceMonitor(history_size=size)


def test_bad_reader() -> None:
    with pytest.raises(ConfigurationError, match="reader"):
        ResourceMonitor(reader=object())  # type: ignore[arg-type]


def test_properties(reader: FakeReader) -> None:
    m = make(reader, interval=2.5, history_size=10)
    assert m.interval == 2.5
    assert m.history_size == 10
    assert not m.running
    assert m.latest is None
    assert "ResourceMonitor" in repr(m)


# -- sampling with real psutil (shape only) --------------------------------------------------


async def test_real_reader_shape() -> None:
    async with ResourceMonitor(interval=3600) as m:
        stats = await m.get_current_stats()
    assert isinstance(stats, SystemStats)
    assert 0.0 <= stats.cpu.usage_percent <= 100.0
    assert stats.memory.total > stats.memory.available > 0
    assert 0 < stats.memory.percent < 100
    assert stats.process.pid > 0
    assert stats.process.thread_count >= 1
    assert stats.process.memory_rss > 0
    assert stats.io.read_bytes >= 0
    assert stats.uptime > 0
    assert len(stats.cpu.load_average) == 3
    assert set(stats.flat()) == SYSTEM_METRICS


async def test_not_started_reads_in_a_thread() -> None:
    m = ResourceMonitor()
    stats = await m.get_current_stats()
    assert stats.memory.total > 0
    assert not monitor_threads()
    sampled = await m.sample()
    assert m.latest is sampled
    await m.stop()


def test_psutil_reader_other_pid() -> None:
    import os

    reading = PsutilReader(os.getpid()).read()
    assert reading.pid == os.getpid()
    assert reading.cpu_total >= reading.cpu_busy >= 0


# -- lifecycle -------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_timer_samples_every_interval(reader: FakeReader) -> None:
    async with make(reader, interval=1.0) as m:
        assert m.running
        await asyncio.sleep(10.5)
        assert len(m.history()) == 10
        assert m.stats().samples == 10
    assert not m.running


async def test_stop_leaves_no_task_or_thread() -> None:
    before = asyncio.all_tasks()
    m = ResourceMonitor(interval=0.01)
    await m.start()
    await m.start()  # idempotent
    assert monitor_threads()
    await asyncio.sleep(0.05)
    await m.stop()
    await m.stop()  # idempotent
    assert asyncio.all_tasks() == before
    assert not monitor_threads()
    assert m.stats().samples >= 1


async def test_concurrent_starts_make_one_timer() -> None:
    before = asyncio.all_tasks()
    m = ResourceMonitor(interval=3600)
    await asyncio.gather(m.start(), m.start(), m.start())
    assert len(asyncio.all_tasks() - before) == 1
    await m.stop()
    assert asyncio.all_tasks() == before


@pytest.mark.looptime
async def test_handler_may_stop_its_own_monitor(reader: FakeReader) -> None:
    before = asyncio.all_tasks()
    m = make(reader, interval=1.0)
    stopped = asyncio.Event()

    @m.on_alert
    async def stop_on_alert(alert: Alert) -> None:
        await m.stop()
        stopped.set()

    m.set_threshold("cpu.usage_percent", 1)
    await m.start()
    await asyncio.wait_for(stopped.wait(), 5)
    await asyncio.sleep(0)
    assert not m.running
    assert asyncio.all_tasks() == before
    assert not monitor_threads()


async def test_stop_before_start(reader: FakeReader) -> None:
    m = make(reader)
    await m.close()
    assert not m.running


@pytest.mark.looptime
async def test_cancelled_owner_cleans_up(reader: FakeReader) -> None:
    before = asyncio.all_tasks()
    started = asyncio.Event()

    async def owner() -> None:
        async with make(reader, interval=1.0):
            started.set()
            await asyncio.sleep(100)

    task = asyncio.create_task(owner())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == before


class BrokenReader:
    blocking = False

    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.fail_first = fail_first

    def read(self) -> Any:
        self.calls += 1
        raise OSError("no /proc")


async def test_start_failure_leaves_nothing() -> None:
    m = ResourceMonitor(reader=BrokenReader())
    with pytest.raises(OSError, match="no /proc"):
        await m.start()
    assert not m.running
    assert not monitor_threads()


@pytest.mark.looptime
async def test_sample_errors_do_not_stop_the_timer(
    reader: FakeReader, caplog: pytest.LogCaptureFixture
) -> None:
    m = make(reader, interval=1.0)
    await m.start()
    good = reader.read

    def flaky() -> Any:
        raise OSError("transient")

    reader.read = flaky  # type: ignore[method-assign]
    await asyncio.sleep(2.5)
    reader.read = good  # type: ignore[method-assign]
    await asyncio.sleep(1.0)
    await m.stop()
    assert m.stats().sample_errors == 2
    assert m.stats().samples == 1
    assert "monitor sample failed" in caplog.text


@pytest.mark.looptime
async def test_slow_sampling_skips_instead_of_bursting(reader: FakeReader) -> None:
    m = make(reader, interval=1.0)

    @m.on_threshold_exceeded
    async def slow(metric: str, value: float, threshold: float) -> None:
        await asyncio.sleep(3.5)

    m.set_threshold("cpu.usage_percent", 0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await m.start()
    await asyncio.sleep(10)
    await m.stop()
    # The first sample fires (and blocks 3.5 s); later ones do not (it stays active).
    assert 6 <= m.stats().samples <= 7
    assert loop.time() - t0 == pytest.approx(10)


# -- deltas ----------------------------------------------------------------------------------


async def test_rates_between_timer_samples(reader: FakeReader) -> None:
    m = make(reader)
    first = await m.sample()  # no previous sample: averages since boot / process start
    assert first.cpu.usage_percent == pytest.approx(10.0)
    reader.cpu_percent = 70.0
    reader.process_cpu_percent = 150.0
    reader.read_rate = 4096.0
    second = await m.sample()
    assert second.cpu.usage_percent == pytest.approx(70.0)
    assert second.process.cpu_percent == pytest.approx(150.0)
    assert second.io.read_bytes_per_sec == pytest.approx(4096.0)
    assert second.io.write_bytes_per_sec == pytest.approx(500.0)
    assert second.io.read_bytes > first.io.read_bytes


async def test_adhoc_reads_do_not_disturb_timer_deltas(reader: FakeReader) -> None:
    m = make(reader)
    await m.sample()
    reader.cpu_percent = 90.0
    adhoc = await m.get_current_stats()  # 1 s at 90 %
    assert adhoc.cpu.usage_percent == pytest.approx(90.0)
    reader.cpu_percent = 10.0
    adhoc2 = await m.get_current_stats()  # since the timer sample: 2 s, (90 + 10) / 2
    assert adhoc2.cpu.usage_percent == pytest.approx(50.0)
    assert len(m.history()) == 1
    timer = await m.sample()  # the timer's delta spans all three seconds
    assert timer.cpu.usage_percent == pytest.approx((90 + 10 + 10) / 3)


async def test_reading_older_than_baseline_is_treated_as_fresh(reader: FakeReader) -> None:
    m = make(reader)
    await m.sample()
    reader.clock._now = 0.0  # a reader whose clock went back (restarted agent)
    stats = await m.get_current_stats()
    assert stats.cpu.usage_percent == pytest.approx(10.0)
    stats = await m.sample()
    assert stats.cpu.usage_percent == pytest.approx(10.0)


# -- history ---------------------------------------------------------------------------------


async def test_history_ring_and_queries(reader: FakeReader) -> None:
    m = make(reader, history_size=5)
    for pct in [10, 20, 30, 40, 50, 60, 70]:
        reader.memory_percent = pct
        await m.sample()
    assert [s.memory.percent for s in m.history()] == [30, 40, 50, 60, 70]
    assert [s.memory.percent for s in m.history(last=2)] == [60, 70]
    assert m.values("memory.percent", last=3) == [50, 60, 70]
    s = m.summary("memory.percent")
    assert (s.count, s.mean, s.min, s.max, s.last) == (5, 50, 30, 70, 70)
    assert s.p50 == 50
    assert s.p95 == pytest.approx(68)
    assert m.percentile("memory.percent", 0.5, last=2) == 65
    assert m.latest is not None
    assert m.latest.memory.percent == 70


def test_history_queries_bad_input(reader: FakeReader) -> None:
    m = make(reader)
    with pytest.raises(ConfigurationError, match="metric"):
        m.values("cpu.nope")
    with pytest.raises(ConfigurationError, match="last"):
        m.history(last=0)
    with pytest.raises(ConfigurationError, match="q"):
        m.percentile("memory.percent", 1.5)
    empty = m.summary("memory.percent")
    assert empty.count == 0
    assert math.isnan(empty.mean)


# -- thresholds ------------------------------------------------------------------------------


async def test_threshold_crossing_calls_handlers_and_alerts(reader: FakeReader) -> None:
    m = make(reader)
    seen: list[tuple[str, float, float]] = []
    alerts: list[Alert] = []
    m.on_threshold_exceeded(
        lambda metric, value, threshold: seen.append((metric, value, threshold))
    )

    @m.on_alert
    async def on_alert(alert: Alert) -> None:
        alerts.append(alert)

    th = m.set_threshold("cpu.usage_percent", 80)
    await m.sample()
    assert seen == []
    reader.cpu_percent = 95
    await m.sample()
    assert len(seen) == 1
    assert seen[0][0] == "cpu.usage_percent"
    assert seen[0][1] == pytest.approx(95)
    assert seen[0][2] == 80.0
    assert th.active
    assert alerts[0].metric == "cpu.usage_percent"
    assert alerts[0].threshold == 80.0
    assert "above" in alerts[0].message
    await m.sample()  # still above: no repeat while active
    assert len(seen) == 1
    assert m.stats().thresholds_fired == 1


async def test_sustained_for_n_samples(reader: FakeReader) -> None:
    m = make(reader)
    fired: list[float] = []
    m.on_threshold_exceeded(lambda metric, value, threshold: fired.append(value))
    m.set_threshold("memory.percent", 90, sustained=3)
    for pct in [95, 95, 50, 95, 95]:  # broken streak resets the count
        reader.memory_percent = pct
        await m.sample()
    assert fired == []
    reader.memory_percent = 96
    await m.sample()
    assert fired == [96]


async def test_hysteresis_prevents_flapping(reader: FakeReader) -> None:
    m = make(reader)
    fired: list[float] = []
    cleared: list[float] = []
    m.on_threshold_exceeded(lambda metric, value, threshold: fired.append(value))
    m.on_threshold_cleared(lambda metric, value, threshold: cleared.append(value))
    m.set_threshold("cpu.usage_percent", 80, hysteresis=10)
    for pct in [85, 79, 81, 75, 85, 69, 85]:
        reader.cpu_percent = pct
        await m.sample()
    assert fired == [pytest.approx(85), pytest.approx(85)]
    assert cleared == [pytest.approx(69)]


async def test_cooldown_delays_refiring(reader: FakeReader) -> None:
    m = make(reader)  # each sample is 1 s apart on the reader's clock
    fired: list[float] = []
    m.on_threshold_exceeded(lambda metric, value, threshold: fired.append(reader.clock()))
    m.set_threshold("memory.percent", 90, cooldown=5)
    pattern = [95, 50, 95, 50, 95, 95, 95, 95, 50, 95]
    for pct in pattern:
        reader.memory_percent = pct
        await m.sample()
    # fires at t=100, clears at 101, re-crosses at 102 but waits out the cooldown until 105.
    assert fired == [100.0, 105.0]


async def test_below_threshold(reader: FakeReader) -> None:
    m = make(reader)
    fired: list[float] = []
    m.on_threshold_exceeded(lambda metric, value, threshold: fired.append(value))
    m.set_threshold("memory.available", 1024**3, direction="below", hysteresis=1024**2)
    reader.memory_percent = 95  # 8 GiB * 5 % available < 1 GiB
    await m.sample()
    reader.memory_percent = 50
    await m.sample()
    reader.memory_percent = 95
    await m.sample()
    assert len(fired) == 2


async def test_custom_metric_threshold_with_labels(reader: FakeReader) -> None:
    m = make(reader)
    fired: list[tuple[str, float, float]] = []
    m.on_threshold_exceeded(lambda *a: fired.append(a))
    m.set_threshold("queue_depth", 100, labels={"queue": "emails"})
    m.set_threshold("not_recorded_yet", 1)
    m.record_metric("queue_depth", 500, labels={"queue": "other"})
    await m.sample()
    assert fired == []
    m.record_metric("queue_depth", 150, labels={"queue": "emails"})
    await m.sample()
    assert fired == [("queue_depth", 150.0, 100.0)]
    m.gauge("connections").set(10)
    m.set_threshold("connections", 5)
    await m.sample()
    assert fired[-1] == ("connections", 10.0, 5.0)


async def test_failing_handler_does_not_stop_others(
    reader: FakeReader, caplog: pytest.LogCaptureFixture
) -> None:
    m = make(reader)
    got: list[str] = []

    def bad(*a: Any) -> None:
        raise RuntimeError("boom")

    async def bad_async(*a: Any) -> None:
        raise ValueError("async boom")

    m.on_threshold_exceeded(bad)
    m.on_threshold_exceeded(bad_async)
    m.on_threshold_exceeded(lambda metric, v, t: got.append(metric))
    m.on_alert(bad)
    m.on_alert(lambda a: got.append(a.message))
    m.set_threshold("cpu.usage_percent", 1)
    await m.sample()
    assert got[0] == "cpu.usage_percent"
    assert "threshold" in got[1]
    assert m.stats().handler_errors == 3
    assert "boom" in caplog.text


async def test_alert_without_threshold_alerts(reader: FakeReader) -> None:
    m = make(reader, alert_on_threshold=False)
    alerts: list[Alert] = []
    m.on_alert(alerts.append)
    m.set_threshold("cpu.usage_percent", 1)
    await m.sample()
    assert alerts == []


async def test_alert_api(reader: FakeReader, caplog: pytest.LogCaptureFixture) -> None:
    m = make(reader)
    logged = await m.alert("nobody listens", "error", region="eu")
    assert "nobody listens" in caplog.text
    assert logged.details == {"region": "eu"}
    assert str(logged) == "nobody listens"
    got: list[Alert] = []
    m.on_alert(got.append)
    a = await m.alert("disk almost full", level="critical")
    assert got == [a]
    assert a.level == "critical"
    assert a.timestamp == 1.0e9
    assert m.recent_alerts[-1] is a
    with pytest.raises(ConfigurationError, match="level"):
        await m.alert("x", level="loud")
    with pytest.raises(ConfigurationError, match="message"):
        await m.alert(42)  # type: ignore[arg-type]
    assert m.remove_handler(got.append) is True  # bound methods compare equal


async def test_remove_handler_and_threshold(reader: FakeReader) -> None:
    m = make(reader)
    calls: list[str] = []

    def handler(metric: str, value: float, threshold: float) -> None:
        calls.append(metric)

    m.on_threshold_exceeded(handler)
    assert m.remove_handler(handler) is True
    assert m.remove_handler(handler) is False
    m.set_threshold("cpu.usage_percent", 1)
    m.set_threshold("cpu.usage_percent", 99, direction="below")
    m.set_threshold("q", 1, labels={"a": 1})
    assert len(m.thresholds) == 3
    assert m.remove_threshold("cpu.usage_percent", direction="below") == 1
    assert m.remove_threshold("q", labels={"a": "2"}) == 0
    assert m.remove_threshold("q", labels={"a": 1}) == 1
    assert m.remove_threshold("cpu.usage_percent") == 1
    await m.sample()
    assert calls == []


def test_threshold_bad_input(reader: FakeReader) -> None:
    m = make(reader)
    with pytest.raises(ConfigurationTypeError, match="value"):
        m.set_threshold("cpu.usage_percent", "90")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="value"):
        m.set_threshold("cpu.usage_percent", math.nan)
    with pytest.raises(ConfigurationError, match="direction"):
        m.set_threshold("cpu.usage_percent", 90, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sustained"):
        m.set_threshold("cpu.usage_percent", 90, sustained=0)
    with pytest.raises(ConfigurationError, match="hysteresis"):
        m.set_threshold("cpu.usage_percent", 90, hysteresis=-1)
    with pytest.raises(ConfigurationError, match="cooldown"):
        m.set_threshold("cpu.usage_percent", 90, cooldown=-1)
    with pytest.raises(ConfigurationError, match="metric"):
        m.set_threshold("", 90)
    with pytest.raises(ConfigurationError, match="not a system metric"):
        m.set_threshold("cpu.usage", 90)
    with pytest.raises(ConfigurationTypeError, match="handler"):
        m.on_alert(42)  # type: ignore[type-var]
    with pytest.raises(ConfigurationTypeError, match="labels"):
        m.set_threshold("x", 1, labels=[("a", "b")])  # type: ignore[arg-type]


def test_threshold_object() -> None:
    t = Threshold("m", 10, sustained=2)
    assert t.evaluate(11, 0.0) is None
    assert t.evaluate(11, 1.0) == "fire"
    assert t.to_dict()["active"] is True
    assert "active=True" in repr(t)
    t.reset()
    assert not t.active
    assert t.breaches == 0
    assert t.key == ("m", (), "above")


# -- application metrics and requests ---------------------------------------------------------


async def test_track_request_feeds_stats(reader: FakeReader) -> None:
    m = make(reader)
    async with m.track_request() as req:
        reader.clock.advance(0.25)
        assert (await m.get_current_stats()).in_flight == 1
    assert req.latency == pytest.approx(0.25)

    async def failing() -> None:
        async with m.track_request("lookup"):
            reader.clock.advance(0.5)
            raise KeyError("x")

    with pytest.raises(KeyError):
        await failing()
    with m.track_request("sync"):
        reader.clock.advance(0.125)
    stats = await m.get_current_stats()
    assert stats.request_count == 3
    assert stats.error_count == 1
    assert stats.latency_sum == pytest.approx(0.875)
    assert stats.in_flight == 0
    assert stats.average_latency == pytest.approx(0.875 / 3)
    assert stats.error_rate == pytest.approx(1 / 3)
    hist = m.registry.get("request_latency_seconds")
    assert hist is not None
    assert hist.get({"request": "lookup"}) == pytest.approx(0.5)


async def test_cancelled_request_is_not_counted(reader: FakeReader) -> None:
    m = make(reader)
    entered = asyncio.Event()

    async def work() -> None:
        async with m.track_request():
            entered.set()
            await asyncio.sleep(100)

    task = asyncio.create_task(work())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert m.stats().request_count == 0
    assert m.stats().cancelled_count == 1
    assert m.stats().in_flight == 0


async def test_stats_is_a_frozen_snapshot(reader: FakeReader) -> None:
    m = make(reader, interval=2.0)
    m.record_request(0.5, error=True)
    await m.sample()
    stats = m.stats()
    assert stats == MonitorStats(
        running=False,
        interval=2.0,
        samples=1,
        sample_errors=0,
        history=1,
        thresholds=0,
        thresholds_fired=0,
        alerts_sent=0,
        handler_errors=0,
        request_count=1,
        error_count=1,
        cancelled_count=0,
        in_flight=0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.samples = 2  # type: ignore[misc]
    m.record_request(0.1)
    assert stats.request_count == 1  # a snapshot: later requests do not change it
    assert dataclasses.asdict(m.stats())["request_count"] == 2


def test_record_request_bad_latency(reader: FakeReader) -> None:
    m = make(reader)
    with pytest.raises(ConfigurationTypeError, match="latency"):
        m.record_request(None)  # type: ignore[arg-type]


def test_record_metric_and_quantiles(reader: FakeReader) -> None:
    m = make(reader)
    for v in range(1, 101):
        m.record_metric("payload_kb", v, labels={"route": "/a"})
    m.record_metrics({"cache_hit_ratio": 0.9, "queue_depth": 3})
    hist = m.registry.get("payload_kb")
    assert hist is not None
    assert hist.kind == "histogram"
    summary = m.histogram("payload_kb").summary({"route": "/a"})
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == 100
    assert m.registry.value("queue_depth") == 3
    assert m.registry.value("missing") is None
    with pytest.raises(ConfigurationTypeError, match="value"):
        m.record_metric("x", "fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationTypeError, match="value"):
        m.record_metric("x", True)
    m.record_metric("x", 1)
    m.record_metric("x", 2.5)  # the cached unlabelled series
    with pytest.raises(ConfigurationError, match="value"):
        m.record_metric("x", math.nan)
    with pytest.raises(ConfigurationTypeError, match="value"):
        m.record_metric("x", False)
    assert m.histogram("x").summary()["count"] == 2
    with pytest.raises(ConfigurationTypeError, match="queue"):
        m.record_metrics({"ok": 1, "queue": None})  # type: ignore[dict-item]
    assert m.registry.value("ok") is None  # checked before anything is recorded
    with pytest.raises(ConfigurationError, match="values"):
        m.record_metrics([("a", 1)])  # type: ignore[arg-type]
    m.counter("jobs").inc()
    with pytest.raises(MonitoringError, match="already a counter"):
        m.record_metric("jobs", 1)


def test_snapshot_and_stats(reader: FakeReader) -> None:
    m = make(reader)
    m.counter("jobs", "Jobs done").inc(3, {"kind": "email"})
    m.set_threshold("cpu.usage_percent", 90)
    snap = m.snapshot()
    assert snap["system"] is None
    assert snap["metrics"]["jobs"]["kind"] == "counter"
    assert snap["metrics"]["jobs"]["series"] == [{"labels": {"kind": "email"}, "value": 3.0}]
    assert snap["thresholds"][0]["metric"] == "cpu.usage_percent"
    assert m.stats().thresholds == 1


async def test_snapshot_after_sample_is_json_ready(reader: FakeReader) -> None:
    import json

    m = make(reader)
    await m.sample()
    await m.alert("hello")
    m.record_metric("latency", 0.5)
    snap = m.snapshot()
    text = json.dumps(snap)
    assert '"usage_percent"' in text
    assert snap["system"]["cpu"]["load_average"] == [1.0, 0.5, 0.25]
    assert snap["alerts"][0]["message"] == "hello"
    assert snap["requests"]["count"] == 0
