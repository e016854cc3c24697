"""The benchmark runner: warm-up, repeated rounds in rotating order, medians and ratios.

Every case of a scenario runs in the same process and on the same event loop, one after
another, so machine noise hits all of them alike; the order rotates each round so no case
always runs first (cold caches) or last (a fragmented heap).
"""

from __future__ import annotations

import gc
import inspect
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Extra = dict[str, float]
RunFn = Callable[[], Awaitable[Extra | None] | Extra | None]
WorkloadFn = Callable[["Options"], list["Scenario"]]


@dataclass
class Case:
    """One contender in a scenario.

    Args:
        name: What is measured, e.g. ``"mtaio TTLCache"`` or ``"raw dict"``.
        run: One round of the workload; sync or async. It may return extra figures
            (``{"bytes/entry": 171.0}``) that are reported as medians beside ops/s.
        ops: Operations done by one round, to turn seconds into ops/s.
        raw: Whether this is the hand-written baseline the ratios refer to.
        setup: Called before every round, untimed (fresh state for the round).
    """

    name: str
    run: RunFn
    ops: int
    raw: bool = False
    setup: Callable[[], Awaitable[None] | None] | None = None


@dataclass
class Scenario:
    """A workload measured for several cases; exactly one case should be ``raw``."""

    name: str
    cases: list[Case]
    note: str = ""


@dataclass
class Options:
    """Knobs every workload receives."""

    rounds: int = 5
    warmup: int = 1
    quick: bool = False

    def scale(self, n: int) -> int:
        """Scale an operation count down by 10 in ``--quick`` mode (a smoke run)."""
        return max(1, n // 10) if self.quick else n


@dataclass
class Result:
    """The figures of one case."""

    scenario: str
    case: str
    raw: bool
    ops_per_s: float
    seconds: list[float]
    extra: dict[str, float] = field(default_factory=dict)
    ratio: float | None = None


WORKLOADS: dict[str, WorkloadFn] = {}


def workload(name: str) -> Callable[[WorkloadFn], WorkloadFn]:
    """Register a workload function under ``name``."""

    def register(fn: WorkloadFn) -> WorkloadFn:
        if name in WORKLOADS:
            raise ValueError(f"workload {name!r} is registered twice")
        WORKLOADS[name] = fn
        return fn

    return register


async def _call(fn: Callable[[], Any]) -> Any:
    out = fn()
    if inspect.isawaitable(out):
        out = await out
    return out


async def _time_case(case: Case) -> tuple[float, Extra]:
    if case.setup is not None:
        await _call(case.setup)
    gc.collect()
    gc.disable()  # a collection landing in one case but not another is noise, not speed
    try:
        start = time.perf_counter()
        extra = await _call(case.run)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed, dict(extra or {})


async def run_scenario(scenario: Scenario, options: Options) -> list[Result]:
    """Measure every case of ``scenario`` and compute ratios to its raw case."""
    cases = scenario.cases
    for _ in range(options.warmup):
        for case in cases:
            await _time_case(case)
    seconds: dict[str, list[float]] = {c.name: [] for c in cases}
    extras: dict[str, list[Extra]] = {c.name: [] for c in cases}
    for r in range(options.rounds):
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            elapsed, extra = await _time_case(case)
            seconds[case.name].append(elapsed)
            extras[case.name].append(extra)
    results = []
    for case in cases:
        median = statistics.median(seconds[case.name])
        keys = {k for e in extras[case.name] for k in e}
        extra = {
            k: statistics.median(e[k] for e in extras[case.name] if k in e) for k in sorted(keys)
        }
        results.append(
            Result(scenario.name, case.name, case.raw, case.ops / median, seconds[case.name], extra)
        )
    raw = [r for r in results if r.raw]
    if raw:
        for r in results:
            r.ratio = r.ops_per_s / raw[0].ops_per_s
    return results


def _fmt_rate(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k"
    return f"{v:.1f}"


def markdown(results: list[Result]) -> str:
    """Render results as a markdown table, one row per case."""
    extra_keys = sorted({k for r in results for k in r.extra})
    head = ["scenario", "case", "median ops/s", "ratio to raw", *extra_keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        name = f"**{r.case}**" if r.case.startswith("mtaio") else r.case
        cells = [r.scenario, name, _fmt_rate(r.ops_per_s), ratio]
        cells += [f"{r.extra[k]:.4g}" if k in r.extra else "" for k in extra_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(results: list[Result], path: str, title: str) -> None:
    """Draw the ratios to raw as horizontal bars into a PNG file (needs matplotlib).

    The ratio axis is logarithmic: ratios run from about 0.01x to 10x, and on a linear axis
    everything below 1x would be a sliver.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rows = [r for r in results if r.ratio is not None and r.ratio > 0]
    labels = [f"{r.scenario} · {r.case}" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    colors = [
        "#2b6cb0" if r.case.startswith("mtaio") else "#718096" if not r.raw else "#38a169"
        for r in rows
    ]
    ratios = [r.ratio or 1.0 for r in rows]
    low = min([*ratios, 0.5]) / 1.5
    high = max([*ratios, 2.0]) * 1.5
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    # bars start at the left edge of the axis: a log axis has no zero
    ax.barh(range(len(rows)), [v - low for v in ratios], left=low, color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="#38a169", linestyle="--", linewidth=1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlabel("throughput relative to the raw asyncio baseline (log scale, higher is better)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
