"""``mtaio-monitor`` / ``python -m mtaio.monitoring``: a live terminal view.

It watches the machine and a process (this one, or ``--pid N``) and, with ``--url``, an
application's Prometheus endpoint (its request counters and its metrics).

Dependency-free: plain ANSI escapes, no curses. Ctrl-C stops it cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from mtaio.exceptions import ConfigurationError

from ._alerts import Alert, Threshold
from ._errors import ProcessGoneError
from ._monitor import ResourceMonitor
from ._reader import PsutilReader
from ._remote import Exposition, check_url, fetch, rows
from ._stats import SYSTEM_METRICS, SystemStats

RED = "\x1b[1;31m"
YELLOW = "\x1b[33m"
GREEN = "\x1b[32m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
RESET = "\x1b[0m"
CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"

_THRESHOLD = re.compile(r"^\s*([\w.]+)\s*(>=|<=|>|<|=)\s*([-+0-9.eE]+)\s*$")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


_BYTES = frozenset(
    {
        "memory.total",
        "memory.available",
        "memory.used",
        "io.read_bytes",
        "io.write_bytes",
        "process.memory_rss",
        "process.memory_vms",
    }
)
_COUNTS = frozenset(
    {
        "cpu.thread_count",
        "cpu.count",
        "io.read_count",
        "io.write_count",
        "process.pid",
        "process.thread_count",
        "process.open_fds",
        "request_count",
        "error_count",
        "in_flight",
    }
)
_SECONDS = frozenset({"uptime", "process.uptime", "latency_sum", "average_latency"})


def format_value(metric: str, value: float) -> str:
    """Format a metric's value the one way the view shows it (limits and readings alike).

    Percentages with one decimal and ``%``, sizes in binary units, rates per second, counts
    as integers, durations in seconds, anything else with two decimals; NaN as ``—``.
    """
    if math.isnan(value):
        return "—"
    if metric.endswith("percent"):
        return f"{value:.1f} %"
    if metric == "error_rate":
        return f"{value * 100:.1f} %"
    if metric in _BYTES:
        return _size(value)
    if metric.endswith("_bytes_per_sec"):
        return _size(value) + "/s"
    if metric in _SECONDS:
        return f"{value:,.3f} s"
    if metric in _COUNTS:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _bar(percent: float, width: int = 30) -> str:
    filled = 0 if math.isnan(percent) else round(max(0.0, min(100.0, percent)) / 100 * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def render(
    stats: SystemStats | None,
    thresholds: Sequence[Threshold] = (),
    alerts: Sequence[Alert] = (),
    *,
    color: bool = True,
    interval: float | None = None,
    remote: Exposition | None = None,
    remote_error: str | None = None,
    url: str | None = None,
) -> str:
    """Render one frame of the live view as text.

    A metric with an active (fired) threshold is shown in red, one with a breach building
    up in yellow; without ``color`` they are marked with ``!`` and ``~`` instead.

    Args:
        stats: The sample to show (None: a "waiting" frame).
        thresholds: Thresholds to list and to highlight metrics with.
        alerts: Recent alerts, newest last (the last five are shown).
        color: Use ANSI colours.
        interval: The refresh interval, shown in the title.
        remote: The last scrape of the application's endpoint (``--url``): its request
            counters replace the view's own, and its metrics are listed.
        remote_error: Why the last scrape failed, if it did.
        url: The endpoint, shown in the application section.

    Returns:
        The frame, lines joined with newlines (no screen-clearing codes).
    """

    def paint(text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if color else text

    state: dict[str, str] = {}
    for t in thresholds:
        if t.active:
            state[t.metric] = "active"
        elif t.breaches and state.get(t.metric) != "active":
            state[t.metric] = "pending"

    def row(label: str, metric: str | None, text: str) -> str:
        line = f"  {label:<18} {text}"
        mark = state.get(metric or "")
        if mark == "active":
            return paint(line, RED) if color else line + "  !"
        if mark == "pending":
            return paint(line, YELLOW) if color else line + "  ~"
        return line

    title = "mtaio.monitoring — live view"
    if interval is not None:
        title += f" (every {interval:g} s, Ctrl-C to quit)"
    lines = [paint(title, BOLD)]
    if stats is None:
        lines.append("  waiting for the first sample...")
        return "\n".join(lines)
    c, m, io, p = stats.cpu, stats.memory, stats.io, stats.process
    when = time.strftime("%H:%M:%S", time.localtime(stats.timestamp))
    lines.append(paint(f"  at {when}, machine up {stats.uptime / 3600:.1f} h", DIM))
    lines.append("")
    lines.append(
        row("CPU", "cpu.usage_percent", f"{_bar(c.usage_percent)} {c.usage_percent:5.1f} %")
    )
    la = c.load_average
    lines.append(row("load average", "cpu.load_average_1m", f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"))
    lines.append(
        row(
            "memory",
            "memory.percent",
            f"{_bar(m.percent)} {m.percent:5.1f} %  {_size(m.used)} / {_size(m.total)}",
        )
    )
    lines.append(row("memory available", "memory.available", _size(m.available)))
    lines.append(
        row(
            "disk I/O",
            "io.read_bytes_per_sec",
            f"read {_size(io.read_bytes_per_sec)}/s  write {_size(io.write_bytes_per_sec)}/s",
        )
    )
    lines.append("")
    lines.append(paint(f"  process {p.pid}", BOLD))
    lines.append(row("CPU", "process.cpu_percent", f"{p.cpu_percent:6.1f} % of a core"))
    lines.append(row("memory (RSS)", "process.memory_rss", _size(p.memory_rss)))
    lines.append(row("threads", "process.thread_count", str(p.thread_count)))
    lines.append(row("open files", "process.open_fds", str(p.open_fds)))
    done, errors, in_flight = stats.request_count, stats.error_count, stats.in_flight
    mean = stats.average_latency
    if remote is not None and remote.value("mtaio_requests_total") is not None:
        done = int(remote.value("mtaio_requests_total") or 0)
        errors = int(remote.value("mtaio_request_errors_total") or 0)
        in_flight = int(remote.value("mtaio_requests_in_flight") or 0)
        latency = remote.value("mtaio_request_latency_seconds_total") or 0.0
        mean = latency / done if done else 0.0
    lines.append(
        row(
            "requests",
            "request_count",
            f"{done} done, {errors} errors, {in_flight} in flight, {mean * 1e3:.1f} ms mean",
        )
    )
    if url is not None:
        lines.append("")
        lines.append(paint(f"  application {url}", BOLD))
        if remote_error is not None:
            lines.append(
                paint(f"  unreachable: {remote_error}", RED)
                if color
                else f"  unreachable: {remote_error}  !"
            )
        elif remote is not None:
            found = rows(remote)
            for r in found:
                lines.append(f"  {r.name[:30]:<30} {r.text}")
            if not found:
                lines.append("  no application metrics yet")
    if thresholds:
        lines.append("")
        lines.append(paint("  thresholds", BOLD))
        for t in thresholds:
            sign = ">" if t.direction == "above" else "<"
            status = (
                "FIRED" if t.active else (f"{t.breaches}/{t.sustained}" if t.breaches else "ok")
            )
            limit = format_value(t.metric, t.value)
            value = format_value(t.metric, t.last_value)
            line = f"  {t.metric} {sign} {limit}: now {value} [{status}]"
            if t.active:
                line = paint(line, RED) if color else line + "  !"
            elif color:
                line = paint(line, GREEN)
            lines.append(line)
    if alerts:
        lines.append("")
        lines.append(paint("  recent alerts", BOLD))
        for a in list(alerts)[-5:]:
            at = time.strftime("%H:%M:%S", time.localtime(a.timestamp))
            lines.append(f"  {at} {a.level:<8} {a.message}")
    return "\n".join(lines)


def parse_threshold(text: str) -> tuple[str, float, str]:
    """Parse ``"cpu.usage_percent>90"`` (or ``<``) into ``(metric, value, direction)``.

    Raises:
        argparse.ArgumentTypeError: If the text is not ``METRIC>VALUE`` or ``METRIC<VALUE``
            with a system metric name.
    """
    match = _THRESHOLD.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"threshold must look like METRIC>VALUE or METRIC<VALUE, got {text!r}"
        )
    metric, op, raw = match.groups()
    if metric not in SYSTEM_METRICS:
        raise argparse.ArgumentTypeError(
            f"unknown metric {metric!r}; known: {', '.join(sorted(SYSTEM_METRICS))}"
        )
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold value must be a number, got {raw!r}") from None
    return metric, value, "below" if op.startswith("<") else "above"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _url(text: str) -> str:
    try:
        return check_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ignore(alert: Alert) -> None:
    """Swallow an alert (the view lists them itself)."""


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser of ``python -m mtaio.monitoring``."""
    parser = argparse.ArgumentParser(
        prog="mtaio-monitor",
        description=(
            "A live terminal view of the system and a process, and of an application's "
            "Prometheus endpoint (Ctrl-C to quit). Also: python -m mtaio.monitoring."
        ),
    )
    parser.add_argument(
        "--pid", type=_positive_int, help="watch this process (default: the view itself)"
    )
    parser.add_argument(
        "--url",
        type=_url,
        metavar="URL",
        help="read an application's metrics, e.g. http://127.0.0.1:9100/metrics "
        "(what ResourceMonitor.serve_metrics() serves)",
    )
    parser.add_argument("--interval", type=_positive_float, default=1.0, help="seconds per refresh")
    parser.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    parser.add_argument("--iterations", type=_positive_int, help="stop after this many frames")
    parser.add_argument(
        "--threshold",
        type=parse_threshold,
        action="append",
        default=[],
        metavar="METRIC>VALUE",
        help="highlight a metric past a value, e.g. 'cpu.usage_percent>80' (repeatable)",
    )
    parser.add_argument(
        "--sustained", type=_positive_int, default=1, help="samples a breach must last"
    )
    parser.add_argument("--no-color", action="store_true", help="plain text, no ANSI colours")
    parser.add_argument(
        "--no-clear", action="store_true", help="print frames one after another (no redraw)"
    )
    return parser


async def run(
    args: argparse.Namespace, out: TextIO, *, monitor: ResourceMonitor | None = None
) -> int:
    """Drive the view: sample, render, wait; until the duration or iterations run out."""
    monitor = monitor or ResourceMonitor(interval=args.interval, alert_on_threshold=True)
    for metric, value, direction in args.threshold:
        monitor.set_threshold(metric, value, direction=direction, sustained=args.sustained)
    # Alerts are shown in the view; without a handler they would also be logged over it.
    monitor.on_alert(_ignore)
    tty = out.isatty()
    color = not args.no_color and tty
    clear = not args.no_clear and tty
    loop = asyncio.get_running_loop()
    deadline = None if args.duration is None else loop.time() + args.duration
    frames = 0
    # The view samples the monitor itself, one sample per frame, instead of starting its
    # timer: each frame then shows exactly the sample the thresholds were evaluated on.
    try:
        if clear:
            out.write(HIDE_CURSOR)
        url: str | None = getattr(args, "url", None)
        remote: Exposition | None = None
        while True:
            try:
                stats = await monitor.sample()
            except ProcessGoneError as exc:  # the watched app ended: nothing more to show
                out.write(f"\n{exc}\n")
                break
            remote_error = None
            if url is not None:
                try:
                    remote = await asyncio.to_thread(fetch, url)
                except OSError as exc:  # the application restarts, say: keep watching
                    remote_error = str(exc) or type(exc).__name__
            frame = render(
                stats,
                monitor.thresholds,
                monitor.recent_alerts,
                color=color,
                interval=args.interval,
                remote=remote,
                remote_error=remote_error,
                url=url,
            )
            out.write((CLEAR if clear else "") + frame + "\n")
            out.flush()
            frames += 1
            if args.iterations is not None and frames >= args.iterations:
                break
            wait = args.interval
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    break
            await asyncio.sleep(wait)
            if deadline is not None and loop.time() >= deadline:
                break
    finally:
        if clear:
            out.write(SHOW_CURSOR)
            out.flush()
        await monitor.stop()
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the live view; return the exit status (0, also after Ctrl-C).

    Bad arguments, an unknown ``--pid`` and an unreachable ``--url`` end it at once with a
    one-line message and exit status 2 (argparse's convention), no traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    monitor = None
    if args.pid is not None:
        try:
            reader = PsutilReader(pid=args.pid)
        except ConfigurationError as exc:
            parser.error(f"--pid: {exc}")
        monitor = ResourceMonitor(interval=args.interval, reader=reader)
    if args.url is not None:
        try:
            fetch(args.url)
        except OSError as exc:
            parser.error(f"--url: cannot read {args.url}: {exc}")
    try:
        return asyncio.run(run(args, stream, monitor=monitor))
    except KeyboardInterrupt:
        stream.write("\nstopped\n")
        stream.flush()
        return 0


def console_main() -> None:
    """The ``mtaio-monitor`` console script."""
    sys.exit(main())
