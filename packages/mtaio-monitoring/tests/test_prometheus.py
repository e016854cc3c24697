from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from mtaio.exceptions import MonitoringError
from mtaio.monitoring import MissingDependencyError, ResourceMonitor

if TYPE_CHECKING:
    from conftest import FakeReader


def make(reader: FakeReader) -> ResourceMonitor:
    return ResourceMonitor(reader=reader, clock=reader.clock)


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


async def scrape(url: str, method: str = "GET") -> tuple[int, str, str]:
    return await asyncio.to_thread(get, url, method)


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_scrape_the_endpoint(reader: FakeReader) -> None:
    m = make(reader)
    m.counter("jobs", "Jobs done").inc(3, {"kind": "email"})
    m.counter("jobs").inc(1, {"queue": "low"})  # label sets may differ between series
    m.gauge("queue.depth").set(7)
    m.record_metric("payload", 10)
    m.record_metric("payload", 20)
    m.histogram("db_seconds", buckets=[0.1, 1.0]).observe(0.5)
    m.record_metric("9lives", 1)
    async with m.track_request("home"):
        reader.clock.advance(0.2)
    await m.sample()
    reader.cpu_percent = 55.0
    await m.sample()
    server = await m.serve_metrics(0)
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    status, ctype, body = await scrape(server.url)
    assert status == 200
    assert ctype.startswith("text/plain")
    s = samples(body)
    assert s["mtaio_cpu_usage_percent"] == pytest.approx(55.0)
    assert s["mtaio_memory_percent"] == 40.0
    assert s['mtaio_load_average{period="1m"}'] == 1.0
    assert s["mtaio_requests_total"] == 1
    assert s["mtaio_request_latency_seconds_total"] == pytest.approx(0.2)
    assert s["mtaio_process_threads"] == 3
    assert s['jobs_total{kind="email",queue=""}'] == 3
    assert s['jobs_total{kind="",queue="low"}'] == 1
    assert s["queue_depth"] == 7
    assert s["payload_count"] == 2
    assert s["payload_sum"] == 30
    assert s['payload{quantile="0.5"}'] == 15
    assert s['db_seconds_bucket{le="1.0"}'] == 1
    assert s['db_seconds_bucket{le="0.1"}'] == 0
    assert s['db_seconds_bucket{le="+Inf"}'] == 1
    assert s['request_latency_seconds_count{request="home"}'] == 1
    assert s["_9lives_count"] == 1
    status, _, body = await scrape(f"http://127.0.0.1:{server.port}/")
    assert status == 200
    assert "mtaio_cpu_usage_percent" in body
    await m.stop()
    with pytest.raises(urllib.error.URLError):
        get(server.url)


async def test_not_sampling_monitor_reads_at_scrape_time(reader: FakeReader) -> None:
    m = make(reader)
    async with await m.serve_metrics() as server:
        _, _, body = await scrape(server.url)
        assert samples(body)["mtaio_memory_percent"] == 40.0
        assert m.latest is None  # a scrape does not write the history
        await server.close()  # idempotent with the async with
    await m.stop()


async def test_errors_and_methods(reader: FakeReader, caplog: pytest.LogCaptureFixture) -> None:
    m = make(reader)
    server = await m.serve_metrics()
    base = f"http://127.0.0.1:{server.port}"
    status, _, body = await scrape(base + "/nope")
    assert (status, body) == (404, "not found\n")
    status, _, _ = await scrape(base + "/metrics", "POST")
    assert status == 405
    status, _, body = await scrape(base + "/metrics?x=1", "HEAD")
    assert (status, body) == (200, "")

    def broken() -> Any:
        raise OSError("reader broke")

    reader.read = broken  # type: ignore[method-assign]
    status, _, _ = await scrape(base + "/metrics")
    assert status == 500
    assert "rendering the metrics failed" in caplog.text
    await m.stop()


async def test_bad_requests_are_dropped(reader: FakeReader) -> None:
    m = make(reader)
    server = await m.serve_metrics()
    # Too large a request head: dropped without an answer.
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    await w.drain()
    assert await r.read() == b""
    w.close()
    await w.wait_closed()
    # A client that goes away mid-request.
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(b"GET /metrics HTTP/1.1\r\n")
    w.close()
    await w.wait_closed()
    # An empty request line.
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(b"\r\n\r\n")
    assert (await r.read()).startswith(b"HTTP/1.1 405")
    w.close()
    await w.wait_closed()
    await m.stop()


async def test_close_drops_idle_connections(reader: FakeReader) -> None:
    before = asyncio.all_tasks()
    m = make(reader)
    server = await m.serve_metrics()
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(b"GET /metrics HTTP/1.1\r\n")  # never finishes its request
    await w.drain()
    await asyncio.sleep(0.01)
    await m.stop()
    assert await r.read() == b""
    w.close()
    await w.wait_closed()
    assert asyncio.all_tasks() == before


async def test_collector_on_a_prometheus_registry(reader: FakeReader) -> None:
    from prometheus_client import (  # type: ignore[import-not-found, unused-ignore]
        CollectorRegistry,
        generate_latest,
    )

    m = make(reader)
    registry = CollectorRegistry()
    registry.register(m.prometheus_collector(namespace="app"))
    text = generate_latest(registry).decode()
    assert "app_cpu_usage_percent" not in text  # nothing sampled yet
    await m.sample()
    text = generate_latest(registry).decode()
    assert samples(text)["app_memory_percent"] == 40.0
    bare = CollectorRegistry()
    bare.register(m.prometheus_collector(namespace=""))
    assert "memory_percent 40.0" in generate_latest(bare).decode()


async def test_missing_prometheus_client_says_which_extra(
    reader: FakeReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    m = make(reader)
    with pytest.raises(MissingDependencyError, match=r"mtaio-monitoring\[prometheus\]") as info:
        m.prometheus_collector()
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, MonitoringError)
    with pytest.raises(MissingDependencyError):
        await m.serve_metrics()
    assert m.stats().running is False


def test_monitoring_imports_without_prometheus_client(tmp_path: Any) -> None:
    import subprocess

    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import mtaio.monitoring as m\n"
        "assert 'prometheus_client' not in [k for k, v in sys.modules.items() if v]\n"
        "print(m.ResourceMonitor.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "ResourceMonitor"
