"""Workload "monitoring": what tracing, metrics and the monitor itself cost.

Scenarios:

* traced-call: 100k awaits of a trivial coroutine (``async def f(): return 1``). The raw
  baseline awaits it undecorated; "hand-timed" wraps each await in two ``perf_counter``
  calls and a list append (the least a tracer must do); mtaio decorates it with
  ``Profiler.trace``. yappi (wall clock) and pyinstrument are whole-program profilers switched
  on around the same loop: they measure every call, not one function, so they are context,
  not contenders.
* traced-yield: the same contenders with a coroutine that yields to the loop once (``await
  asyncio.sleep(0)``): the smallest piece of real async work.
* Both tracing scenarios also run the profiler's sampling mode (a thread reads the stack
  every 5 ms; the loop runs undecorated code).
* sampling-cost: 100k awaits of a coroutine doing a few microseconds of Python, sampled by
  the profiler's sampling mode (every 10 ms, and every 5 ms, its default) beside py-spy
  attached to the same process (``py-spy record --rate 100 --pid <this process>``, in its
  default blocking mode, which pauses the process for each sample, and ``--nonblocking``).
  py-spy is started before the round and stopped after it, outside the timing; it runs as
  another process, so on a busy machine it also competes for the CPU.
* counter-inc: 200k increments. Raw: ``dict[key] += 1``. mtaio ``Counter.inc()`` and a bound
  series (``counter.labels(...)`` kept, as on a hot path) beside prometheus_client's
  ``Counter.inc()`` and its bound ``labels()`` child.
* record-metric: 200k observations. Raw: count, sum, min, max and a bounded deque by hand.
  mtaio ``record_metric`` (name lookup each call) and a bound histogram series beside
  prometheus_client's ``Histogram.observe`` and ``Summary.observe``.
* sample: one monitor sample. Raw: ``PsutilReader().read()`` called directly (the psutil cost
  alone, blocking the loop); mtaio ``await monitor.sample()`` (worker thread, stats, history,
  three thresholds) and ``get_current_stats()``. ``cpu_ms/op`` is process CPU per sample.
* monitor-cpu: the loop idles for a second with, and without, a monitor sampling every 0.1 s;
  ``cpu_%`` is the process CPU over that second (100 = one core). The cost at 1 s is a tenth
  of the 0.1 s figure minus the idle loop's share.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mtaio.monitoring import Profiler, PsutilReader, ResourceMonitor

from .._runner import Case, Options, Scenario, workload


async def _f() -> int:
    return 1


def _tracing_cases(target: Callable[[], Awaitable[int]], n: int) -> list[Case]:
    """The contenders of a tracing scenario, all awaiting ``target`` n times."""
    cases: list[Case] = []

    async def raw() -> None:
        f = target
        for _ in range(n):
            await f()

    cases.append(Case("raw await", raw, n, raw=True))

    async def hand_timed() -> None:
        f = target
        clock = time.perf_counter
        out: list[tuple[float, float]] = []
        append = out.append
        for _ in range(n):
            t0 = clock()
            await f()
            append((t0, clock()))

    cases.append(Case("hand-timed (2x perf_counter + append)", hand_timed, n))

    profiler = Profiler(max_traces=n)
    traced = profiler.trace(target)

    async def mtaio_traced() -> None:
        for _ in range(n):
            await traced()

    cases.append(Case("mtaio Profiler.trace", mtaio_traced, n, setup=profiler.clear))

    lean = Profiler(trace_async_tasks=False, max_traces=n)
    lean_traced = lean.trace(target)

    async def mtaio_lean() -> None:
        for _ in range(n):
            await lean_traced()

    cases.append(
        Case("mtaio Profiler.trace (trace_async_tasks=False)", mtaio_lean, n, setup=lean.clear)
    )

    disabled = Profiler(enabled=False)
    off = disabled.trace(target)

    async def mtaio_disabled() -> None:
        for _ in range(n):
            await off()

    cases.append(Case("mtaio Profiler.trace (disabled)", mtaio_disabled, n))

    sampler = Profiler()

    async def mtaio_sampling() -> None:
        f = target
        with sampler.sampling(0.005):
            for _ in range(n):
                await f()

    cases.append(
        Case("mtaio Profiler.sampling() every 5 ms", mtaio_sampling, n, setup=sampler.clear)
    )

    try:
        import yappi

        async def with_yappi() -> None:
            yappi.set_clock_type("wall")
            yappi.start()
            try:
                f = target
                for _ in range(n):
                    await f()
            finally:
                yappi.stop()
                yappi.clear_stats()

        cases.append(Case("yappi (whole program)", with_yappi, n))
    except ImportError:  # pragma: no cover - optional peer
        pass
    try:
        from pyinstrument import Profiler as PyInstrument

        async def with_pyinstrument() -> None:
            prof = PyInstrument(async_mode="disabled")
            prof.start()
            try:
                f = target
                for _ in range(n):
                    await f()
            finally:
                prof.stop()

        cases.append(Case("pyinstrument (whole program, sampling)", with_pyinstrument, n))
    except ImportError:  # pragma: no cover - optional peer
        pass
    return cases


def _traced_call(options: Options) -> Scenario:
    n = options.scale(100_000)
    return Scenario("traced-call", _tracing_cases(_f, n), note="await of a trivial coroutine")


async def _yielding() -> int:
    await asyncio.sleep(0)
    return 1


def _traced_yield(options: Options) -> Scenario:
    n = options.scale(50_000)
    return Scenario(
        "traced-yield",
        _tracing_cases(_yielding, n),
        note="a coroutine that yields to the loop once (await asyncio.sleep(0))",
    )


async def _work() -> int:
    # A few microseconds of Python per call: something for a sampler to see.
    total = 0
    for i in range(100):
        total += i
    return total


class _PySpy:
    """py-spy attached to this process for one round, started and stopped outside timing."""

    def __init__(self, exe: str, *flags: str) -> None:
        self._exe = exe
        self._flags = flags
        self._proc: subprocess.Popen[str] | None = None
        self._dir: str | None = None  # py-spy's output, removed when it is reaped
        atexit.register(self.reap)

    def start(self) -> None:
        """Reap any py-spy left running, then attach a new one and wait until it samples."""
        _reap_all()
        self._dir = tempfile.mkdtemp(prefix="mtaio-bench-pyspy-")
        out = str(Path(self._dir) / "samples.txt")
        command = [self._exe, "record", "--rate", "100", "--format", "raw", "-o", out]
        self._proc = subprocess.Popen(
            [*command, *self._flags, "--pid", str(os.getpid())],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _RUNNING.append(self)
        assert self._proc.stdout is not None
        # It prints "py-spy> Sampling process 100 times a second..." once it is attached.
        ready, _, _ = select.select([self._proc.stdout], [], [], 30)
        line = self._proc.stdout.readline() if ready else "(nothing printed in 30 s)"
        if "Sampling process" not in line:
            rest = self._proc.stdout.read() if self._proc.poll() is not None else ""
            self.reap()
            raise RuntimeError(f"py-spy could not attach: {(line + rest).strip()}")

    def stop(self) -> None:
        """Ask py-spy to stop (SIGINT: it detaches and writes its file); reaped later."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)

    def reap(self) -> None:
        """Wait for py-spy to be gone (setup of the next round, or at exit)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self._wait(proc)
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    @staticmethod
    def _wait(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


_RUNNING: list[_PySpy] = []


def _reap_all() -> None:
    while _RUNNING:
        _RUNNING.pop().reap()


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _sampling_cost(options: Options) -> Scenario:
    n = options.scale(100_000)
    cases: list[Case] = []

    async def loop() -> None:
        for _ in range(n):
            await _work()

    cases.append(Case("raw loop (no profiler)", loop, n, raw=True, setup=_reap_all))
    for interval in (0.01, 0.005):
        profiler = Profiler()

        async def sampled(
            profiler: Profiler = profiler, interval: float = interval
        ) -> dict[str, float]:
            start = time.perf_counter()
            with profiler.sampling(interval) as block:
                await loop()
            return {"samples/s": block.samples / (time.perf_counter() - start)}

        def fresh(profiler: Profiler = profiler) -> None:
            _reap_all()
            profiler.clear()

        label = f"mtaio Profiler.sampling() every {interval * 1e3:g} ms"
        cases.append(Case(label, sampled, n, setup=fresh))
    exe = _py_spy()
    if exe is not None:  # pragma: no branch - an optional peer
        for flags, label in (((), "blocking"), (("--nonblocking",), "--nonblocking")):
            spy = _PySpy(exe, *flags)

            async def spied(spy: _PySpy = spy) -> None:
                try:
                    await loop()
                finally:
                    spy.stop()

            cases.append(
                Case(f"py-spy record --rate 100 ({label}), attached", spied, n, setup=spy.start)
            )
    return Scenario(
        "sampling-cost",
        cases,
        note="100k awaits of a coroutine adding 100 numbers; samplers at 100-200 Hz",
    )


def _counter_inc(options: Options) -> Scenario:
    n = options.scale(200_000)
    cases: list[Case] = []

    async def raw() -> None:
        counts: dict[str, float] = {}
        for _ in range(n):
            counts["jobs"] = counts.get("jobs", 0.0) + 1

    cases.append(Case("raw dict +=", raw, n, raw=True))
    monitor = ResourceMonitor()

    async def mtaio_inc() -> None:
        c = monitor.counter("jobs")
        for _ in range(n):
            c.inc()

    cases.append(Case("mtaio Counter.inc()", mtaio_inc, n))

    async def mtaio_bound() -> None:
        child = monitor.counter("jobs_l").labels(kind="email")
        for _ in range(n):
            child.inc()

    cases.append(Case("mtaio bound series .inc()", mtaio_bound, n))
    try:
        import prometheus_client as pc

        registry = pc.CollectorRegistry()
        pcounter = pc.Counter("jobs", "jobs", registry=registry)
        plabelled = pc.Counter("jobs_l", "jobs", ["kind"], registry=registry)

        async def prom_inc() -> None:
            for _ in range(n):
                pcounter.inc()

        async def prom_bound() -> None:
            child = plabelled.labels(kind="email")
            for _ in range(n):
                child.inc()

        cases.append(Case("prometheus_client Counter.inc()", prom_inc, n))
        cases.append(Case("prometheus_client bound labels().inc()", prom_bound, n))
    except ImportError:  # pragma: no cover - optional peer
        pass
    return Scenario("counter-inc", cases)


def _record_metric(options: Options) -> Scenario:
    n = options.scale(200_000)
    values = [float(i % 1000) / 1000 for i in range(n)]
    cases: list[Case] = []

    async def raw() -> None:
        count, total, lo, hi = 0, 0.0, float("inf"), float("-inf")
        recent: deque[float] = deque(maxlen=1024)
        for count, v in enumerate(values, 1):  # noqa: B007 - the count is the point
            total += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
            recent.append(v)
        assert count == n

    cases.append(Case("raw count/sum/min/max + deque", raw, n, raw=True))
    monitor = ResourceMonitor()

    async def mtaio_record() -> None:
        record = monitor.record_metric
        for v in values:
            record("latency", v)

    cases.append(Case("mtaio record_metric()", mtaio_record, n))

    async def mtaio_observe() -> None:
        child = monitor.histogram("db_seconds").labels(query="select")
        for v in values:
            child.observe(v)

    cases.append(Case("mtaio bound histogram .observe()", mtaio_observe, n))
    try:
        import prometheus_client as pc

        registry = pc.CollectorRegistry()
        hist = pc.Histogram("db_seconds", "db", registry=registry)
        summ = pc.Summary("latency", "latency", registry=registry)

        async def prom_hist() -> None:
            for v in values:
                hist.observe(v)

        async def prom_summary() -> None:
            for v in values:
                summ.observe(v)

        cases.append(Case("prometheus_client Histogram.observe()", prom_hist, n))
        cases.append(Case("prometheus_client Summary.observe() (no quantiles)", prom_summary, n))
    except ImportError:  # pragma: no cover - optional peer
        pass
    return Scenario("record-metric", cases)


def _cpu() -> float:
    return time.process_time()


def _sample(options: Options) -> Scenario:
    n = options.scale(500)
    reader = PsutilReader()
    cases: list[Case] = []

    async def raw() -> dict[str, float]:
        c0 = _cpu()
        for _ in range(n):
            reader.read()
        return {"cpu_ms/op": (_cpu() - c0) * 1e3 / n}

    cases.append(Case("raw PsutilReader().read() (blocks the loop)", raw, n, raw=True))
    monitor = ResourceMonitor(history_size=100)
    monitor.on_alert(lambda alert: None)  # a threshold may fire on a busy machine: keep quiet
    monitor.set_threshold("cpu.usage_percent", 99, sustained=3)
    monitor.set_threshold("memory.percent", 99)
    monitor.set_threshold("process.memory_rss", 1e12)

    async def mtaio_sample() -> dict[str, float]:
        await monitor.start()
        try:
            c0 = _cpu()
            for _ in range(n):
                await monitor.sample()
            return {"cpu_ms/op": (_cpu() - c0) * 1e3 / n}
        finally:
            await monitor.stop()

    cases.append(Case("mtaio await monitor.sample()", mtaio_sample, n))

    async def mtaio_current() -> dict[str, float]:
        await monitor.start()
        try:
            c0 = _cpu()
            for _ in range(n):
                await monitor.get_current_stats()
            return {"cpu_ms/op": (_cpu() - c0) * 1e3 / n}
        finally:
            await monitor.stop()

    cases.append(Case("mtaio await get_current_stats()", mtaio_current, n))
    return Scenario("sample", cases, note="includes the worker-thread hand-off")


def _monitor_cpu(options: Options) -> Scenario:
    seconds = 0.3 if options.quick else 1.0

    async def idle() -> dict[str, float]:
        c0, w0 = _cpu(), time.perf_counter()
        await asyncio.sleep(seconds)
        return {"cpu_%": (_cpu() - c0) / (time.perf_counter() - w0) * 100}

    async def monitored(interval: float) -> dict[str, float]:
        async with ResourceMonitor(interval=interval) as monitor:
            monitor.on_alert(lambda alert: None)
            monitor.set_threshold("cpu.usage_percent", 99, sustained=3)
            c0, w0 = _cpu(), time.perf_counter()
            await asyncio.sleep(seconds)
            cpu, wall = _cpu() - c0, time.perf_counter() - w0
        return {"cpu_%": cpu / wall * 100}

    async def at_100ms() -> dict[str, float]:
        return await monitored(0.1)

    cases = [
        Case("raw idle loop", idle, 1, raw=True),
        Case("mtaio ResourceMonitor(interval=0.1)", at_100ms, 1),
    ]
    return Scenario("monitor-cpu", cases, note=f"{seconds:g} s of an idle loop per round")


@workload("monitoring")
def monitoring(options: Options) -> list[Scenario]:
    """Tracing overhead, metric recording, the monitor's sampling cost and CPU use."""
    return [
        _traced_call(options),
        _traced_yield(options),
        _counter_inc(options),
        _record_metric(options),
        _sample(options),
        _monitor_cpu(options),
        _sampling_cost(options),  # last: py-spy is stopped after its round, not waited for
    ]


_SCENARIOS: dict[str, Callable[[Options], Scenario]] = {
    "traced-call": _traced_call,
    "traced-yield": _traced_yield,
    "counter-inc": _counter_inc,
    "record-metric": _record_metric,
    "sample": _sample,
    "monitor-cpu": _monitor_cpu,
    "sampling-cost": _sampling_cost,
}


def main(argv: list[str] | None = None) -> int:
    """Run some scenarios of this workload alone (the profiler's tables are made this way).

    ``python -m tools.bench.workloads.monitoring traced-call traced-yield --rounds 15``
    """
    import argparse
    import platform

    from .._runner import markdown, run_scenario

    parser = argparse.ArgumentParser(prog="python -m tools.bench.workloads.monitoring")
    parser.add_argument("scenarios", nargs="+", choices=sorted(_SCENARIOS))
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case")
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    args = parser.parse_args(argv)
    options = Options(rounds=args.rounds, quick=args.quick)

    async def run() -> list[Any]:
        results = []
        for name in args.scenarios:
            results += await run_scenario(_SCENARIOS[name](options), options)
        return results

    results = asyncio.run(run())
    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, "
        f"rounds={options.rounds}{' quick' if options.quick else ''} -->\n"
    )
    print(markdown(results))
    print("\noverhead over the raw case (1/ratio - 1):")
    for r in results:
        if r.ratio:
            print(f"  {r.scenario:14} {r.case:55} {1 / r.ratio - 1:6.2f}")
    return 0


__all__: tuple[str, ...] = ("monitoring",)

if __name__ == "__main__":
    sys.exit(main())
