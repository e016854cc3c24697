"""The store's watchdog: one timer bounding every call in flight, on virtual loop time."""

from __future__ import annotations

import asyncio

import pytest

from mtaio.resources._watchdog import Watchdog


async def _watched(watch: Watchdog, seconds: float) -> str:
    """A call that takes ``seconds``: "answered", or "timed out" when the watchdog cut it."""
    task = watch.enter()
    try:
        await asyncio.sleep(seconds)
        return "answered"
    except asyncio.CancelledError:
        if not watch.timed_out(task):
            raise
        return "timed out"
    finally:
        watch.leave(task)


@pytest.mark.looptime
async def test_a_call_is_cut_off_between_the_timeout_and_an_eighth_more() -> None:
    watch = Watchdog(1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await _watched(watch, 100) == "timed out"
    assert 1.0 <= loop.time() - start <= 1.125 + 1e-9
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation was taken back
    assert await _watched(watch, 0.9) == "answered"  # within the bound: untouched
    watch.close()


@pytest.mark.looptime
async def test_calls_started_at_different_times_each_get_their_whole_timeout() -> None:
    watch = Watchdog(0.8)
    loop = asyncio.get_running_loop()

    async def late_call(delay: float) -> float:
        await asyncio.sleep(delay)
        start = loop.time()
        assert await _watched(watch, 50) == "timed out"
        return loop.time() - start

    elapsed = await asyncio.gather(*(late_call(d) for d in (0, 0.05, 0.33, 0.71)))
    assert all(0.8 <= e <= 0.9 + 1e-9 for e in elapsed), elapsed


@pytest.mark.looptime
async def test_a_cancellation_from_elsewhere_is_never_taken_for_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = Watchdog(1.0)
    call = asyncio.create_task(_watched(watch, 100))
    await asyncio.sleep(0.5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # cancelled from elsewhere right after the watchdog cut it: that cancellation wins
    check = Watchdog._check

    def check_then_cancel(self: Watchdog) -> None:
        check(self)
        if self._expired:
            call.cancel()

    monkeypatch.setattr(Watchdog, "_check", check_then_cancel)
    call = asyncio.create_task(_watched(watch, 100))
    await asyncio.wait([call])
    assert call.cancelled()
    assert not watch._calls and not watch._expired
    watch.close()


@pytest.mark.looptime
async def test_the_timer_stops_when_no_call_is_made_and_starts_again() -> None:
    watch = Watchdog(0.8)
    assert await _watched(watch, 0.01) == "answered"
    assert _armed(watch)
    await asyncio.sleep(0.5)  # a tick with the last call, then an idle tick
    assert not _armed(watch)
    assert await _watched(watch, 5) == "timed out"
    watch.close()
    assert not _armed(watch)


def _armed(watch: Watchdog) -> bool:
    return watch._handle is not None
