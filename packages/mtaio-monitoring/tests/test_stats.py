from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mtaio.monitoring import SYSTEM_METRICS, SystemStats
from mtaio.monitoring._stats import build_stats

if TYPE_CHECKING:
    from conftest import FakeReader


def test_build_without_previous_reading_is_since_boot(reader: FakeReader) -> None:
    now = reader.read()
    stats = build_stats(now, None, timestamp=5.0, request_count=2, latency_sum=1.0)
    assert stats.cpu.usage_percent == 10.0
    assert stats.process.cpu_percent == 0.05  # 0.05 CPU s over a process age of 100 s
    assert stats.io.read_bytes_per_sec == now.io_read_bytes / now.uptime
    assert stats.average_latency == 0.5
    assert stats.error_rate == 0.0
    assert stats.timestamp == 5.0


def test_zero_spans_do_not_divide_by_zero(reader: FakeReader) -> None:
    now = reader.read()
    zero = dataclasses.replace(now, cpu_total=0.0, process_uptime=0.0, uptime=0.0)
    stats = build_stats(zero, None, timestamp=0.0)
    assert stats.cpu.usage_percent == 0.0
    assert stats.process.cpu_percent == 0.0
    assert stats.io.read_bytes_per_sec == 0.0
    assert stats.average_latency == 0.0
    same = build_stats(now, now, timestamp=0.0)
    assert same.io.write_bytes_per_sec == 0.0


def test_flat_and_dict(reader: FakeReader) -> None:
    stats = build_stats(reader.read(), None, timestamp=1.0, request_count=4, error_count=1)
    flat = stats.flat()
    assert set(flat) == SYSTEM_METRICS
    assert flat["error_rate"] == 0.25
    assert flat["cpu.load_average_5m"] == 0.5
    d = stats.to_dict()
    assert d["cpu"]["load_average"] == [1.0, 0.5, 0.25]  # type: ignore[index]
    assert d["error_rate"] == 0.25
    assert isinstance(stats, SystemStats)
