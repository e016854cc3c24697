"""The live view as a person uses it: in a terminal (a pty), attached to another process
and to its Prometheus endpoint; and with bad arguments."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mtaio.monitoring._cli import CLEAR, HIDE_CURSOR, SHOW_CURSOR, render
from mtaio.monitoring._remote import check_url, parse, rows
from mtaio.monitoring._stats import build_stats

if TYPE_CHECKING:
    from conftest import FakeReader

pytest.importorskip("prometheus_client")
pty = pytest.importorskip("pty")

APP = """
import asyncio, sys
from mtaio.monitoring import ResourceMonitor

async def main() -> None:
    async with ResourceMonitor(interval=0.2) as monitor:
        server = await monitor.serve_metrics(0)
        monitor.counter("jobs", "Jobs done").inc(5)
        monitor.gauge("queue_depth").set(3)
        for _ in range(4):
            monitor.record_request(0.02)
        print(server.url, flush=True)
        await asyncio.sleep(float(sys.argv[1]))  # a bounded life

asyncio.run(main())
"""


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the child app did not start in time"
    return proc.stdout.readline().strip()


def _screen(master: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the view exited and closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_view_attached_to_an_app_in_a_terminal(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    app = subprocess.Popen([sys.executable, str(script), "30"], stdout=subprocess.PIPE, text=True)
    try:
        url = _read_line(app, 30)
        assert url.startswith("http://127.0.0.1:")
        master, slave = pty.openpty()
        argv = ["--pid", str(app.pid), "--url", url, "--iterations", "2", "--interval", "0.2"]
        view = subprocess.Popen(
            [sys.executable, "-m", "mtaio.monitoring", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        os.close(slave)
        try:
            screen = _screen(master, view, 60)
            assert view.wait(timeout=30) == 0
        finally:
            os.close(master)
            if view.poll() is None:  # pragma: no cover - only when the test already failed
                view.kill()
                view.wait()
    finally:
        app.kill()  # SIGKILL: the app holds nothing that needs a clean stop
        app.wait()
        assert app.stdout is not None
        app.stdout.close()
    assert screen.startswith(HIDE_CURSOR)
    assert screen.count(CLEAR) == 2  # a terminal: redrawn in place
    assert SHOW_CURSOR in screen
    assert f"process {app.pid}" in screen  # the other process, not the view
    assert "4 done, 0 errors" in screen  # the app's request counters, not the view's 0
    assert f"application {url}" in screen
    assert "jobs" in screen and "5 total" in screen
    assert "queue_depth" in screen and "3.00" in screen
    assert "Traceback" not in screen


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_view_ends_cleanly_when_the_watched_app_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    app = subprocess.Popen([sys.executable, str(script), "30"], stdout=subprocess.PIPE, text=True)
    try:
        url = _read_line(app, 30)
        master, slave = pty.openpty()
        argv = ["--pid", str(app.pid), "--url", url, "--interval", "0.2", "--duration", "60"]
        view = subprocess.Popen(
            [sys.executable, "-m", "mtaio.monitoring", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
        )
        os.close(slave)
        try:
            first = b""
            deadline = time.monotonic() + 30
            while b"application" not in first and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    first += os.read(master, 65536)
            assert b"application" in first  # a frame is on screen
            app.kill()  # SIGKILL mid-run
            app.wait()
            screen = _screen(master, view, 60)
            assert view.wait(timeout=30) == 0
        finally:
            os.close(master)
            if view.poll() is None:  # pragma: no cover - only when the test already failed
                view.kill()
                view.wait()
    finally:
        if app.poll() is None:  # pragma: no cover - only when the test already failed
            app.kill()
            app.wait()
        assert app.stdout is not None
        app.stdout.close()
    assert f"process {app.pid} has exited" in screen
    assert "Traceback" not in screen
    assert SHOW_CURSOR in screen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pid", "999999999"], "--pid: pid 999999999 is not a running process"),
        (["--pid", "0"], "expected a positive integer"),
        (["--url", "ftp://example.org"], "expected an http:// or https:// URL"),
        (["--url", "http://127.0.0.1:{port}/metrics"], "--url: cannot read"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv: list[str], message: str) -> None:
    argv = [a.format(port=_free_port()) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "mtaio.monitoring", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_console_script_is_declared() -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="mtaio-monitor")
    assert script.value == "mtaio.monitoring._cli:console_main"
    assert callable(script.load())


def test_parse_skips_what_does_not_parse() -> None:
    text = "\n".join(
        [
            "# HELP jobs Jobs done",
            "# TYPE jobs counter",
            'jobs_total{kind="a"} 2.0',
            'jobs_total{kind="b\\"x"} 3.0',
            "# TYPE lat histogram",
            "lat_count 4",
            "lat_sum 2.0",
            "# TYPE depth gauge",
            "depth NaN",
            "garbage line with {{{",
            "bad_value abc",
            "# TYPE mtaio_cpu_usage_percent gauge",
            "mtaio_cpu_usage_percent 5",
            "\x00\xff",
        ]
    )
    expo = parse(text)
    assert expo.value("jobs_total") == 5.0
    assert expo.value("depth") is None
    assert expo.value("bad_value") is None
    texts = {r.name: r.text for r in rows(expo)}
    assert texts == {"jobs": "5 total", "lat": "4 observed, mean 0.5"}
    with pytest.raises(ValueError, match="URL"):
        check_url("127.0.0.1:9100")


def test_render_shows_an_unreachable_endpoint(reader: FakeReader) -> None:
    stats = build_stats(reader.read(), None, timestamp=0.0)
    text = render(stats, color=False, url="http://h/metrics", remote_error="refused")
    assert "unreachable: refused  !" in text
    text = render(stats, color=False, url="http://h/metrics", remote=parse(""))
    assert "no application metrics yet" in text
