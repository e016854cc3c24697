"""The system statistics a monitor produces, and the raw readings they are built from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import final


@final
@dataclass(frozen=True, slots=True)
class Reading:
    """One raw reading of the machine and the process, as a reader returns it.

    Counters are cumulative (since boot, or since the process started); the monitor turns
    two readings into percentages and rates. Readers other than the psutil one (a fake in
    tests, a remote agent) build this directly.

    Attributes:
        time: A monotonic reading (seconds) of when the values were read.
        cpu_busy: Cumulative non-idle CPU seconds, summed over every CPU.
        cpu_total: Cumulative CPU seconds (busy and idle), summed over every CPU.
        load_average: The 1, 5 and 15 minute load averages.
        memory_total: Physical memory in bytes.
        memory_available: Memory available to new processes, in bytes.
        memory_used: Memory in use, in bytes.
        memory_percent: ``memory_used`` as a percentage of the total.
        io_read_bytes: Cumulative bytes read from disks.
        io_write_bytes: Cumulative bytes written to disks.
        io_read_count: Cumulative disk read operations.
        io_write_count: Cumulative disk write operations.
        uptime: Seconds since the machine booted.
        pid: The process id.
        process_cpu: Cumulative CPU seconds (user and system) of the process.
        process_rss: Resident memory of the process, in bytes.
        process_vms: Virtual memory of the process, in bytes.
        process_threads: Threads in the process.
        process_fds: Open file descriptors (handles on Windows) of the process.
        process_uptime: Seconds since the process started.
        cpu_count: Logical CPUs of the machine (0: unknown, then estimated from the CPU
            seconds that pass per wall second). It bounds the process CPU figure.
    """

    time: float
    cpu_busy: float
    cpu_total: float
    load_average: tuple[float, float, float]
    memory_total: int
    memory_available: int
    memory_used: int
    memory_percent: float
    io_read_bytes: int
    io_write_bytes: int
    io_read_count: int
    io_write_count: int
    uptime: float
    pid: int
    process_cpu: float
    process_rss: int
    process_vms: int
    process_threads: int
    process_fds: int
    process_uptime: float
    cpu_count: int = 0


@final
@dataclass(frozen=True, slots=True)
class CPUStats:
    """CPU figures.

    Attributes:
        usage_percent: Machine-wide CPU use (0-100) over the measuring window: the time
            since a reading at least the monitor's ``min_window`` old (in practice the last
            complete sampling interval), never a window of a few milliseconds.
        load_average: The 1, 5 and 15 minute load averages.
        thread_count: Threads in this process.
        count: Logical CPUs of the machine.
    """

    usage_percent: float
    load_average: tuple[float, float, float]
    thread_count: int
    count: int = 1


@final
@dataclass(frozen=True, slots=True)
class MemoryStats:
    """Physical memory figures, in bytes (``percent`` is 0-100)."""

    total: int
    available: int
    used: int
    percent: float


@final
@dataclass(frozen=True, slots=True)
class IOStats:
    """Disk I/O: cumulative counters and the rates since the previous timer sample.

    Attributes:
        read_bytes: Bytes read since boot.
        write_bytes: Bytes written since boot.
        read_count: Read operations since boot.
        write_count: Write operations since boot.
        read_bytes_per_sec: Read throughput since the previous timer sample.
        write_bytes_per_sec: Write throughput since the previous timer sample.
    """

    read_bytes: int
    write_bytes: int
    read_count: int
    write_count: int
    read_bytes_per_sec: float = 0.0
    write_bytes_per_sec: float = 0.0


@final
@dataclass(frozen=True, slots=True)
class ProcessStats:
    """Figures of the monitored process.

    Attributes:
        pid: The process id.
        cpu_percent: CPU use of the process over the same window as the machine's, where
            100 is one full core, as in ``top`` and psutil: several busy threads take it
            past 100, and it is bounded by 100 x the number of CPUs.
        memory_rss: Resident memory in bytes.
        memory_vms: Virtual memory in bytes.
        thread_count: Threads in the process.
        open_fds: Open file descriptors (handles on Windows).
        uptime: Seconds since the process started.
    """

    pid: int
    cpu_percent: float
    memory_rss: int
    memory_vms: int
    thread_count: int
    open_fds: int
    uptime: float


@final
@dataclass(frozen=True, slots=True)
class SystemStats:
    """One snapshot of the system, the process and the application's request counters.

    Metric names used by thresholds and history queries are the dotted paths of these
    fields: ``"cpu.usage_percent"``, ``"memory.percent"``, ``"io.read_bytes_per_sec"``,
    ``"process.memory_rss"``, ``"request_count"``, ``"error_rate"``...

    Attributes:
        timestamp: Wall-clock time of the reading (``time.time()``), for display.
        cpu: CPU figures.
        memory: Memory figures.
        io: Disk I/O figures.
        process: Figures of this process.
        uptime: Seconds since the machine booted.
        request_count: Requests finished through the monitor's request tracker.
        error_count: Those of them that raised.
        latency_sum: Total seconds spent in those requests.
        in_flight: Requests currently inside the tracker.
    """

    timestamp: float
    cpu: CPUStats
    memory: MemoryStats
    io: IOStats
    process: ProcessStats
    uptime: float
    request_count: int = 0
    error_count: int = 0
    latency_sum: float = 0.0
    in_flight: int = 0

    @property
    def average_latency(self) -> float:
        """Mean seconds per finished request (0.0 before the first one)."""
        return self.latency_sum / self.request_count if self.request_count else 0.0

    @property
    def error_rate(self) -> float:
        """Share (0-1) of finished requests that raised (0.0 before the first one)."""
        return self.error_count / self.request_count if self.request_count else 0.0

    def to_dict(self) -> dict[str, object]:
        """Return the snapshot as nested plain dicts (JSON-ready)."""
        out = dataclasses.asdict(self)
        out["cpu"]["load_average"] = list(self.cpu.load_average)
        out["average_latency"] = self.average_latency
        out["error_rate"] = self.error_rate
        return out

    def flat(self) -> dict[str, float]:
        """Return every numeric figure under its dotted metric name."""
        out: dict[str, float] = {}
        for group in ("cpu", "memory", "io", "process"):
            for f in dataclasses.fields(getattr(self, group)):
                value = getattr(getattr(self, group), f.name)
                if isinstance(value, int | float):
                    out[f"{group}.{f.name}"] = value
        la1, la5, la15 = self.cpu.load_average
        out["cpu.load_average_1m"] = la1
        out["cpu.load_average_5m"] = la5
        out["cpu.load_average_15m"] = la15
        out["uptime"] = self.uptime
        out["request_count"] = self.request_count
        out["error_count"] = self.error_count
        out["latency_sum"] = self.latency_sum
        out["in_flight"] = self.in_flight
        out["average_latency"] = self.average_latency
        out["error_rate"] = self.error_rate
        return out


#: Every metric name :meth:`SystemStats.flat` produces (thresholds and history accept them).
SYSTEM_METRICS: frozenset[str] = frozenset(
    [f"cpu.{n}" for n in ("usage_percent", "thread_count", "count")]
    + [f"cpu.load_average_{n}" for n in ("1m", "5m", "15m")]
    + [f"memory.{f.name}" for f in dataclasses.fields(MemoryStats)]
    + [f"io.{f.name}" for f in dataclasses.fields(IOStats)]
    + [f"process.{f.name}" for f in dataclasses.fields(ProcessStats)]
    + [
        "uptime",
        "request_count",
        "error_count",
        "latency_sum",
        "in_flight",
        "average_latency",
        "error_rate",
    ]
)


#: Names of the predecessor's docs and examples, accepted wherever a system metric is.
METRIC_ALIASES: dict[str, str] = {
    "cpu_usage": "cpu.usage_percent",
    "memory_usage": "memory.percent",
}


def resolve_metric(name: str) -> str:
    """Return the system metric an alias stands for, or ``name`` unchanged."""
    return METRIC_ALIASES.get(name, name)


@final
@dataclass(frozen=True, slots=True)
class MonitorStats:
    """A snapshot of a :class:`ResourceMonitor`'s own counters, from ``stats()``.

    Attributes:
        running: Whether the sampling timer is running.
        interval: Seconds between timer samples.
        samples: Samples added to the history (by the timer or a direct ``sample()``).
        sample_errors: Timer samples that failed (logged, and the timer kept going).
        history: Samples held in the history at the time of the snapshot.
        thresholds: Thresholds registered.
        thresholds_fired: Times a threshold fired.
        alerts_sent: Alerts sent (to the ``on_alert`` handlers, or logged when there is none).
        handler_errors: Handler calls (threshold and alert handlers) that raised.
        request_count: Requests that finished, tracked or recorded (errors included).
        error_count: Tracked requests that raised.
        cancelled_count: Tracked requests that were cancelled.
        in_flight: Tracked requests running at the time of the snapshot.
        unrecorded_thresholds: Application metrics that thresholds watch but that were never
            recorded during the first samples (a typo would otherwise silence an alert).
    """

    running: bool
    interval: float
    samples: int
    sample_errors: int
    history: int
    thresholds: int
    thresholds_fired: int
    alerts_sent: int
    handler_errors: int
    request_count: int
    error_count: int
    cancelled_count: int
    in_flight: int
    unrecorded_thresholds: tuple[str, ...] = ()


def build_stats(
    now: Reading,
    prev: Reading | None,
    *,
    timestamp: float,
    request_count: int = 0,
    error_count: int = 0,
    latency_sum: float = 0.0,
    in_flight: int = 0,
) -> SystemStats:
    """Turn a reading (and the previous one, for rates) into :class:`SystemStats`.

    Without a previous reading, percentages and rates are averages since boot (CPU, I/O)
    or since the process started (process CPU): the only honest figure a single reading
    of cumulative counters gives.
    """
    if prev is None:
        d_busy, d_total = now.cpu_busy, now.cpu_total
        d_pcpu, d_pwall = now.process_cpu, now.process_uptime
        d_read, d_write, d_wall = now.io_read_bytes, now.io_write_bytes, now.uptime
    else:
        d_busy, d_total = now.cpu_busy - prev.cpu_busy, now.cpu_total - prev.cpu_total
        d_wall = now.time - prev.time
        d_pcpu, d_pwall = now.process_cpu - prev.process_cpu, d_wall
        d_read = now.io_read_bytes - prev.io_read_bytes
        d_write = now.io_write_bytes - prev.io_write_bytes
    cpu_percent = _clamp(100.0 * d_busy / d_total) if d_total > 0 else 0.0
    cores = now.cpu_count
    if cores <= 0:  # a reader that does not know: CPU seconds per wall second
        span = now.uptime if prev is None else now.time - prev.time
        cores = max(1, round(d_total / span)) if span > 0 else 1
    # Process CPU time ticks in coarse steps (10 ms on Linux): bound it by what the machine
    # can give, 100 % per core, whatever the window.
    pcpu_percent = min(100.0 * cores, max(0.0, 100.0 * d_pcpu / d_pwall)) if d_pwall > 0 else 0.0
    read_rate = max(0.0, d_read / d_wall) if d_wall > 0 else 0.0
    write_rate = max(0.0, d_write / d_wall) if d_wall > 0 else 0.0
    return SystemStats(
        timestamp=timestamp,
        cpu=CPUStats(cpu_percent, now.load_average, now.process_threads, cores),
        memory=MemoryStats(
            now.memory_total, now.memory_available, now.memory_used, now.memory_percent
        ),
        io=IOStats(
            now.io_read_bytes,
            now.io_write_bytes,
            now.io_read_count,
            now.io_write_count,
            read_rate,
            write_rate,
        ),
        process=ProcessStats(
            now.pid,
            pcpu_percent,
            now.process_rss,
            now.process_vms,
            now.process_threads,
            now.process_fds,
            now.process_uptime,
        ),
        uptime=now.uptime,
        request_count=request_count,
        error_count=error_count,
        latency_sum=latency_sum,
        in_flight=in_flight,
    )


def _clamp(value: float) -> float:
    return min(100.0, max(0.0, value))
