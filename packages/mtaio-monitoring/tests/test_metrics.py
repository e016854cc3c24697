from __future__ import annotations

import math

import pytest

from mtaio.exceptions import ConfigurationError, ConfigurationTypeError, MonitoringError
from mtaio.monitoring import Counter, Gauge, Histogram, MetricsRegistry


def test_counter() -> None:
    c = Counter("hits", "Hits")
    c.inc()
    c.inc(2, {"route": "/a"})
    child = c.labels(route="/a")
    child.inc(0.5)
    assert c.get() == 1
    assert c.get({"route": "/a"}) == 2.5
    assert c.labels({"route": "/a"}, extra=1).get() == 0
    assert sorted(labels for labels, _ in [(tuple(lab.items()), x) for lab, x in c.series()]) == [
        (),
        (("extra", "1"), ("route", "/a")),
        (("route", "/a"),),
    ]
    with pytest.raises(ConfigurationError, match="amount"):
        c.inc(-1)
    with pytest.raises(MonitoringError, match="no series"):
        c.get({"route": "/missing"})


def test_gauge() -> None:
    g = Gauge("depth")
    g.set(5)
    g.inc(2)
    g.dec(3)
    g.inc(labels={"q": "a"})
    g.dec(0.5, labels={"q": "a"})
    g.set(9, labels={"q": "b"})
    assert g.get() == 4
    assert g.get({"q": "a"}) == 0.5
    assert g.labels(q="b").get() == 9


def test_histogram_buckets_and_quantiles() -> None:
    h = Histogram("latency", buckets=[1.0, 0.1, math.inf], reservoir=4)
    assert h.buckets == (0.1, 1.0)
    for v in (0.05, 0.5, 0.5, 2.0, 3.0):
        h.observe(v)
    child = h.labels()
    assert child.count == 5
    assert child.cumulative_buckets() == [(0.1, 1), (1.0, 3), (math.inf, 5)]
    assert list(child.recent) == [0.5, 0.5, 2.0, 3.0]  # the reservoir keeps the latest 4
    assert h.quantile(0.5) == 1.25
    s = h.summary()
    assert (s["count"], s["sum"], s["min"], s["max"], s["last"]) == (5, 6.05, 0.05, 3.0, 3.0)
    assert h.get() == 3.0
    with pytest.raises(ConfigurationError, match="q"):
        h.quantile(2)
    empty = Histogram("e").summary()
    assert empty["count"] == 0
    assert all(math.isnan(empty[k]) for k in ("mean", "min", "max", "last", "p50"))
    with pytest.raises(ConfigurationError, match="reservoir"):
        Histogram("x", reservoir=0)
    with pytest.raises(ConfigurationTypeError, match="buckets"):
        Histogram("x", buckets=["a"])  # type: ignore[list-item]


def test_registry() -> None:
    r = MetricsRegistry()
    c = r.counter("a")
    assert r.counter("a") is c
    g = r.gauge("b")
    assert r.gauge("b") is g
    h = r.histogram("c")
    assert r.histogram("c") is h
    assert len(r) == 3
    assert "a" in r
    assert [m.name for m in r] == ["a", "b", "c"]
    assert r.get("zzz") is None
    with pytest.raises(MonitoringError, match="already a counter"):
        r.gauge("a")
    with pytest.raises(ConfigurationError, match="name"):
        r.counter("")
    with pytest.raises(ConfigurationTypeError, match="labels"):
        c.inc(1, labels="x=1")  # type: ignore[arg-type]
    h.observe(2.0)
    snap = r.snapshot()
    assert snap["c"]["series"][0]["count"] == 1  # type: ignore[index]
