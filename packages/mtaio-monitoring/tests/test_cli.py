from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from mtaio.monitoring import Alert, ResourceMonitor, Threshold
from mtaio.monitoring._cli import (
    CLEAR,
    HIDE_CURSOR,
    RED,
    SHOW_CURSOR,
    YELLOW,
    build_parser,
    main,
    parse_threshold,
    render,
    run,
)
from mtaio.monitoring._stats import build_stats

if TYPE_CHECKING:
    from conftest import FakeReader


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_frame(reader: FakeReader) -> None:
    stats = build_stats(reader.read(), None, timestamp=0.0, request_count=2, latency_sum=0.5)
    hot = Threshold("cpu.usage_percent", 5)
    hot.evaluate(10, 0.0)
    building = Threshold("memory.percent", 30, sustained=3)
    building.evaluate(40, 0.0)
    calm = Threshold("process.open_fds", 100)
    alerts = [Alert("disk full", "critical", 0.0)]
    text = render(stats, [hot, building, calm], alerts, color=True, interval=1.0)
    assert "every 1 s" in text
    cpu_line = next(line for line in text.splitlines() if "CPU" in line and "%" in line)
    assert cpu_line.startswith(RED)
    mem_line = next(
        line for line in text.splitlines() if line.lstrip(YELLOW).startswith("  memory ")
    )
    assert mem_line.startswith(YELLOW)
    assert "[FIRED]" in text
    assert "[1/3]" in text
    assert "[ok]" in text
    assert "disk full" in text
    assert "2 done" in text
    assert "250.0 ms mean" in text
    assert "8.0 GiB" in text

    plain = render(stats, [hot, building, calm], alerts, color=False)
    assert "\x1b" not in plain
    assert "  !" in plain
    assert "  ~" in plain


def test_render_waiting_and_minimal(reader: FakeReader) -> None:
    assert "waiting" in render(None, color=False)
    stats = build_stats(reader.read(), None, timestamp=0.0)
    text = render(stats, color=False)
    assert "thresholds" not in text
    assert "recent alerts" not in text
    below = Threshold("memory.available", 1.0, direction="below")
    assert "memory.available < 1 B: now —" in render(stats, [below], color=False)


def test_parse_threshold() -> None:
    assert parse_threshold("cpu.usage_percent>80") == ("cpu.usage_percent", 80.0, "above")
    assert parse_threshold(" memory.available <= 1e9 ") == ("memory.available", 1e9, "below")
    for bad in ("cpu", "nope.metric>1", "cpu.usage_percent>1.2.3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_threshold(bad)


@pytest.mark.parametrize(
    "argv",
    [["--interval", "0"], ["--interval", "x"], ["--iterations", "0"], ["--iterations", "x"]],
)
def test_parser_rejects_bad_values(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert "error" in capsys.readouterr().err


@pytest.mark.looptime
async def test_run_for_a_duration(reader: FakeReader) -> None:
    args = build_parser().parse_args(
        ["--interval", "1", "--duration", "3.5", "--threshold", "cpu.usage_percent>5"]
    )
    out = TTY()
    monitor = ResourceMonitor(reader=reader, clock=reader.clock)
    assert await run(args, out, monitor=monitor) == 0
    text = out.getvalue()
    assert text.count(CLEAR) == 4  # frames at t = 0, 1, 2, 3
    assert text.startswith(HIDE_CURSOR)
    assert text.endswith(SHOW_CURSOR)
    assert "[FIRED]" in text
    assert not monitor.running


@pytest.mark.looptime
async def test_run_iterations_plain(reader: FakeReader) -> None:
    args = build_parser().parse_args(["--interval", "0.5", "--iterations", "3", "--no-color"])
    out = io.StringIO()
    await run(args, out, monitor=ResourceMonitor(reader=reader, clock=reader.clock))
    text = out.getvalue()
    assert text.count("live view") == 3
    assert "\x1b" not in text  # not a terminal: no colours, no redraw


@pytest.mark.looptime
async def test_run_duration_shorter_than_interval(reader: FakeReader) -> None:
    args = build_parser().parse_args(["--interval", "10", "--duration", "1", "--no-clear"])
    out = TTY()
    await run(args, out, monitor=ResourceMonitor(reader=reader, clock=reader.clock))
    assert out.getvalue().count("live view") == 1
    assert CLEAR not in out.getvalue()


def test_main_short_real_run() -> None:
    out = io.StringIO()
    assert main(["--iterations", "1", "--interval", "0.01"], out=out) == 0
    assert "process" in out.getvalue()


def test_main_reports_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(coro: object) -> int:
        coro.close()  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr("mtaio.monitoring._cli.asyncio.run", interrupted)
    out = io.StringIO()
    assert main([], out=out) == 0
    assert "stopped" in out.getvalue()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_module_entry_point_exits_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtaio.monitoring", "--interval", "0.05", "--no-color"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline()  # the first frame is on screen: the loop is running
        assert "live view" in first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test already failed
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "stopped" in out
    assert "Traceback" not in err
