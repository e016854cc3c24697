"""Where readings come from: psutil by default, anything with ``read()`` in tests."""

from __future__ import annotations

import os
import time
from typing import Protocol, final, runtime_checkable

# psutil ships no stubs; types-psutil may or may not be installed where mypy runs.
import psutil  # type: ignore[import-untyped, unused-ignore]

from mtaio.exceptions import ConfigurationError, require_callable, require_positive_int
from mtaio.typing import Clock

from ._errors import ProcessGoneError
from ._stats import Reading


@runtime_checkable
class StatsReader(Protocol):
    """Something that returns a :class:`Reading` of the machine and the process.

    ``read()`` may block (it reads ``/proc`` or calls the OS): the monitor runs it in a
    worker thread unless the reader sets ``blocking = False`` (an in-memory fake does).
    """

    def read(self) -> Reading:
        """Take one reading."""
        ...


@final
class PsutilReader:
    """The default reader: system and process figures through psutil.

    Args:
        pid: The process to watch; this process by default.
        clock: The monotonic clock stamped on each reading.

    Raises:
        ConfigurationError: If ``pid`` is not a running process (or not readable).
    """

    blocking = True

    __slots__ = ("_boot_time", "_clock", "_cpu_count", "_process")

    def __init__(self, pid: int | None = None, *, clock: Clock = time.monotonic) -> None:
        if pid is None:
            pid = os.getpid()
        require_positive_int("pid", pid)
        try:
            self._process = psutil.Process(pid)
        except (psutil.NoSuchProcess, OverflowError, ValueError):
            raise ConfigurationError(f"pid {pid} is not a running process") from None
        except psutil.AccessDenied:
            raise ConfigurationError(f"pid {pid}: access denied (not your process?)") from None
        self._boot_time = psutil.boot_time()
        self._cpu_count = int(psutil.cpu_count() or 0)
        self._clock = require_callable("clock", clock)

    def read(self) -> Reading:
        """Read CPU, memory, disk and process figures (blocking; a fraction of a ms).

        Raises:
            ProcessGoneError: If the watched process has exited.
        """
        now_wall = time.time()
        cpu = psutil.cpu_times()
        total = sum(cpu)
        # Guest time is already counted in user time on Linux (psutil does the same).
        total -= getattr(cpu, "guest", 0.0) + getattr(cpu, "guest_nice", 0.0)
        idle = cpu.idle + getattr(cpu, "iowait", 0.0)
        vm = psutil.virtual_memory()
        disk = psutil.disk_io_counters()
        try:
            load = psutil.getloadavg()
        except (AttributeError, OSError):  # pragma: no cover - platforms without a load average
            load = (0.0, 0.0, 0.0)
        p = self._process
        try:
            with p.oneshot():
                pcpu = p.cpu_times()
                mem = p.memory_info()
                threads = p.num_threads()
                # num_fds on POSIX, num_handles on Windows; getattr keeps mypy's stubs happy.
                count_fds = getattr(p, "num_fds", None) or getattr(p, "num_handles")  # noqa: B009
                fds = int(count_fds())
                created = p.create_time()
        except psutil.NoSuchProcess:
            raise ProcessGoneError(f"process {p.pid} has exited") from None
        return Reading(
            time=self._clock(),
            cpu_busy=total - idle,
            cpu_total=total,
            load_average=(float(load[0]), float(load[1]), float(load[2])),
            memory_total=vm.total,
            memory_available=vm.available,
            memory_used=vm.used,
            memory_percent=vm.percent,
            io_read_bytes=disk.read_bytes if disk else 0,
            io_write_bytes=disk.write_bytes if disk else 0,
            io_read_count=disk.read_count if disk else 0,
            io_write_count=disk.write_count if disk else 0,
            uptime=max(0.0, now_wall - self._boot_time),
            pid=p.pid,
            process_cpu=pcpu.user + pcpu.system,
            process_rss=mem.rss,
            process_vms=mem.vms,
            process_threads=threads,
            process_fds=fds,
            process_uptime=max(0.0, now_wall - created),
            cpu_count=self._cpu_count,
        )
