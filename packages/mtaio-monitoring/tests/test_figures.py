"""Figures you can trust: CPU windows, bounded process CPU, metric aliases, unrecorded
thresholds, one number format in the live view."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import pytest

from mtaio.exceptions import ConfigurationError
from mtaio.monitoring import METRIC_ALIASES, ResourceMonitor, Threshold
from mtaio.monitoring._cli import format_value, render
from mtaio.monitoring._stats import build_stats

if TYPE_CHECKING:
    from conftest import FakeReader


async def test_current_stats_right_after_a_sample_cover_the_last_interval(
    reader: FakeReader,
) -> None:
    monitor = ResourceMonitor(reader=reader)
    reader.cpu_percent = 87.0
    await monitor.sample()  # the baseline: no earlier reading
    await monitor.sample()  # a full 1 s window at 87 %
    # A few milliseconds later the machine has been idle: measured over those 3 ms alone,
    # CPU would read 0 % (and on real counters, 0 % or 100 %).
    reader.step = 0.003
    reader.cpu_percent = 0.0
    reader.process_cpu_percent = 0.0
    stats = await monitor.get_current_stats()
    # The window runs from the reading before the newest (1.003 s): 0.87 s busy of 1.003 s.
    assert stats.cpu.usage_percent == pytest.approx(87.0 / 1.003)
    assert stats.process.cpu_percent == pytest.approx(5.0 / 1.003)
    assert stats.cpu.count == 4


async def test_a_sample_too_soon_measures_from_the_mark_before(reader: FakeReader) -> None:
    monitor = ResourceMonitor(reader=reader, min_window=0.5)
    reader.cpu_percent = 60.0
    await monitor.sample()
    first = await monitor.sample()
    assert first.cpu.usage_percent == pytest.approx(60.0)
    reader.step = 0.2  # shorter than min_window, and the one mark before is 0.2 s old too
    reader.cpu_percent = 0.0
    stats = await monitor.sample()
    # 1.2 s since the mark before the newest: 0.6 CPU s busy per CPU.
    assert stats.cpu.usage_percent == pytest.approx(60.0 / 1.2)
    # Marks are at least min_window apart: the 0.2 s reading did not become one.
    assert len(monitor._marks) == 2
    assert monitor._marks[-1].time == pytest.approx(101.0)


async def test_right_after_start_without_a_sample_rates_are_since_boot(
    reader: FakeReader,
) -> None:
    monitor = ResourceMonitor(reader=reader)
    reader.step = 0.003
    await monitor.start()
    try:
        stats = await monitor.get_current_stats()
    finally:
        await monitor.stop()
    # No reading is min_window old and there is no sample yet: the averages since boot.
    assert stats.cpu.usage_percent == pytest.approx(10.0)


async def test_carried_rates_when_only_a_young_mark_exists(reader: FakeReader) -> None:
    monitor = ResourceMonitor(reader=reader)
    reader.cpu_percent = 42.0
    await monitor.sample()
    await monitor.sample()
    monitor._marks.popleft()  # as after a clock change: one (young) mark left
    reader.step = 0.003
    reader.cpu_percent = 0.0
    stats = await monitor.get_current_stats()
    assert stats.cpu.usage_percent == pytest.approx(42.0)
    assert stats.io.read_bytes_per_sec == pytest.approx(1000.0)


def test_process_cpu_is_bounded_by_the_cores(reader: FakeReader) -> None:
    reader.cpus = 2
    reader.process_cpu_percent = 1332.0  # what a 3 ms window on 10 ms ticks once gave
    prev = reader.read()
    now = reader.read()
    stats = build_stats(now, prev, timestamp=0.0)
    assert stats.process.cpu_percent == 200.0  # 100 % x 2 cores, estimated
    known = dataclasses.replace(now, cpu_count=8)
    assert build_stats(known, prev, timestamp=0.0).process.cpu_percent == 800.0
    assert build_stats(known, prev, timestamp=0.0).cpu.count == 8


async def test_real_reader_figures_have_the_right_shape() -> None:
    monitor = ResourceMonitor()
    try:
        await monitor.sample()
        stats = await monitor.get_current_stats()
    finally:
        await monitor.stop()
    assert stats.cpu.count >= 1
    assert 0.0 <= stats.cpu.usage_percent <= 100.0
    assert 0.0 <= stats.process.cpu_percent <= 100.0 * stats.cpu.count


async def test_predecessor_metric_names_are_aliases(reader: FakeReader) -> None:
    assert METRIC_ALIASES == {"cpu_usage": "cpu.usage_percent", "memory_usage": "memory.percent"}
    monitor = ResourceMonitor(reader=reader)
    fired: list[tuple[str, float]] = []
    monitor.on_threshold_exceeded(lambda metric, value, limit: fired.append((metric, value)))
    cpu = monitor.set_threshold("cpu_usage", 50)
    mem = monitor.set_threshold("memory_usage", 30)
    assert (cpu.metric, mem.metric) == ("cpu.usage_percent", "memory.percent")
    reader.cpu_percent = 87.0
    await monitor.sample()
    await monitor.sample()
    assert [v for m, v in fired if m == "cpu.usage_percent"] == [pytest.approx(87.0)]
    assert ("memory.percent", 40.0) in fired
    assert monitor.values("memory_usage") == [40.0, 40.0]
    assert monitor.summary("cpu_usage").metric == "cpu.usage_percent"
    assert monitor.remove_threshold("cpu_usage") == 1
    assert monitor.stats().unrecorded_thresholds == ()


async def test_threshold_on_a_metric_never_recorded_is_reported(
    reader: FakeReader, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = ResourceMonitor(reader=reader)
    monitor.record_metric("queue_depth", 1)
    monitor.set_threshold("queue_dept", 5)  # the typo
    monitor.set_threshold("queue_depth", 5)
    with caplog.at_level(logging.WARNING, logger="mtaio.monitoring"):
        for _ in range(2):
            await monitor.sample()
        assert monitor.stats().unrecorded_thresholds == ()
        await monitor.sample()
        await monitor.sample()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once, not every sample
    assert "'queue_dept'" in warnings[0] and "queue_depth" in warnings[0]
    assert monitor.stats().unrecorded_thresholds == ("queue_dept",)
    monitor.record_metric("queue_dept", 1)
    await monitor.sample()
    assert monitor.stats().unrecorded_thresholds == ()


def test_system_group_typos_are_refused() -> None:
    monitor = ResourceMonitor()
    with pytest.raises(ConfigurationError, match="not a system metric"):
        monitor.set_threshold("cpu.usage", 5)


def test_live_view_formats_values_one_way(reader: FakeReader) -> None:
    stats = build_stats(reader.read(), None, timestamp=0.0)
    thresholds = []
    for metric, limit, now in (
        ("cpu.usage_percent", 80, 5.5),
        ("cpu.load_average_1m", 4, 0),
        ("jobs", 2.5, 4.478),
    ):
        t = Threshold(metric, limit)
        t.evaluate(now, 0.0)
        thresholds.append(t)
    text = render(stats, thresholds, color=False)
    assert "cpu.usage_percent > 80.0 %: now 5.5 %" in text
    assert "cpu.load_average_1m > 4.00: now 0.00" in text
    assert "jobs > 2.50: now 4.48" in text
    assert format_value("memory.available", 3 * 1024**3) == "3.0 GiB"
    assert format_value("io.read_bytes_per_sec", 2048) == "2.0 KiB/s"
    assert format_value("process.open_fds", 7.0) == "7"
    assert format_value("error_rate", 0.25) == "25.0 %"
    assert format_value("average_latency", 0.5) == "0.500 s"


def test_reader_of_a_process_that_exits_says_so() -> None:
    import subprocess
    import sys

    from mtaio.monitoring import ProcessGoneError, PsutilReader

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        reader = PsutilReader(pid=proc.pid)
        assert reader.read().pid == proc.pid
    finally:
        proc.kill()  # SIGKILL mid-run
        proc.wait()
    with pytest.raises(ProcessGoneError, match=f"process {proc.pid} has exited"):
        reader.read()
