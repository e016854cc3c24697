"""The profiler's sampling mode: traces built from stack samples, same report format."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from mtaio.exceptions import MonitoringError
from mtaio.monitoring import Profiler
from mtaio.monitoring._profiler import _Record
from mtaio.monitoring._sampler import Sampler
from mtaio.typing import ManualClock


def _sampler(records: list[_Record], clock: ManualClock) -> Sampler:
    return Sampler(threading.get_ident(), 1.0, clock, itertools.count(), records.append, None)


def test_consecutive_samples_of_a_frame_make_one_trace_with_its_parent() -> None:
    records: list[_Record] = []
    clock = ManualClock(0.0)
    sampler = _sampler(records, clock)

    def inner() -> None:
        sampler.sample()
        clock.advance(1.0)
        sampler.sample()

    def outer() -> None:
        inner()
        clock.advance(1.0)
        sampler.sample()  # inner has returned: its trace ends here

    outer()
    clock.advance(1.0)
    sampler.stop()  # never started: stop() just closes what is open
    sampler._close(0, clock())
    by_name = {r[2].rsplit(".", 1)[-1]: r for r in records}
    assert "inner" in by_name and "outer" in by_name
    inner_r, outer_r = by_name["inner"], by_name["outer"]
    assert (inner_r[3], inner_r[4]) == (0.0, 2.0)
    assert (outer_r[3], outer_r[4]) == (0.0, 3.0)
    assert inner_r[1] == outer_r[0]  # nested under outer
    assert sampler.samples == 3


async def test_sampling_a_busy_loop_reports_like_traces() -> None:
    profiler = Profiler(sample_interval=0.001)

    def crunch() -> int:
        deadline = time.perf_counter() + 0.2
        n = 0
        while time.perf_counter() < deadline:
            n += 1
        return n

    async def handler() -> int:
        return crunch()

    async with profiler.sampling() as block:
        assert profiler.sampling_active
        assert "sampling" in repr(profiler)
        await asyncio.create_task(handler(), name="worker")
    assert "sampling" not in repr(profiler)
    assert block.samples >= 2  # the busy loop holds the GIL: a sample per switch interval
    profile = await profiler.get_profile()
    crunched = [t for t in profile.traces if t.name.endswith("crunch")]
    assert crunched, profile.format()
    assert crunched[0].task == "worker"
    parent = next(t for t in profile.traces if t.id == crunched[0].parent_id)
    assert parent.name.endswith("handler")
    assert "<locals>.crunch" in profile.format()  # long names keep their end


def test_sampling_twice_is_refused_and_stop_is_idempotent() -> None:
    profiler = Profiler()
    with profiler.sampling(0.01), pytest.raises(MonitoringError, match="already sampling"):
        profiler.start_sampling()
    assert profiler.stop_sampling() == 0
    profiler.start_sampling(0.01)
    profiler.close()
    assert not profiler.sampling_active
