"""Fixtures: a fake stats reader whose figures the tests set."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mtaio.monitoring import Reading
from mtaio.typing import ManualClock


@dataclass
class FakeReader:
    """An in-memory reader: each read() advances its clock by ``step`` seconds.

    ``cpu_percent`` and ``process_cpu_percent`` are turned into cumulative CPU seconds, so
    the monitor's delta arithmetic sees exactly these percentages between two reads.
    """

    step: float = 1.0
    cpus: int = 4
    cpu_percent: float = 10.0
    process_cpu_percent: float = 5.0
    memory_percent: float = 40.0
    memory_total: int = 8 * 1024**3
    read_rate: float = 1000.0
    write_rate: float = 500.0
    threads: int = 3
    fds: int = 7
    clock: ManualClock = field(default_factory=lambda: ManualClock(100.0))
    blocking: bool = False
    reads: int = 0
    _busy: float = 0.0
    _total: float = 0.0
    _pcpu: float = 0.0
    _read: float = 0.0
    _write: float = 0.0

    def read(self) -> Reading:
        if self.reads:
            self.clock.advance(self.step)
        self.reads += 1
        span = self.step * self.cpus
        self._total += span
        self._busy += span * self.cpu_percent / 100
        self._pcpu += self.step * self.process_cpu_percent / 100
        self._read += self.read_rate * self.step
        self._write += self.write_rate * self.step
        used = int(self.memory_total * self.memory_percent / 100)
        return Reading(
            time=self.clock(),
            cpu_busy=self._busy,
            cpu_total=self._total,
            load_average=(1.0, 0.5, 0.25),
            memory_total=self.memory_total,
            memory_available=self.memory_total - used,
            memory_used=used,
            memory_percent=self.memory_percent,
            io_read_bytes=int(self._read),
            io_write_bytes=int(self._write),
            io_read_count=self.reads,
            io_write_count=self.reads,
            uptime=1000.0 + self.clock(),
            pid=4242,
            process_cpu=self._pcpu,
            process_rss=50 * 1024**2,
            process_vms=200 * 1024**2,
            process_threads=self.threads,
            process_fds=self.fds,
            process_uptime=self.clock(),
        )


@pytest.fixture
def reader() -> FakeReader:
    return FakeReader()
