"""One timer per store that bounds every call in flight, instead of one timer per call.

``asyncio.timeout`` around each call schedules a timer handle, pushes it on the loop's heap
and cancels it again: about 5 us, a twentieth of a local Redis round trip, paid by every
grant. The store's calls all share one bound (its ``timeout``), so one coarse timer does the
same job: while calls are in flight it ticks every ``timeout / 8`` seconds, and a call that
has seen more than eight ticks has run for at least ``timeout``; its task is cancelled, and
the store turns that cancellation into a timeout, exactly as ``asyncio.timeout`` does (the
task's cancel count is restored; a cancellation from elsewhere stays one). A call is thus
cut off between ``timeout`` and ``1.125 * timeout``. Entering and leaving cost a dict store
and a delete; the timer stops when no call was made for a tick.
"""

from __future__ import annotations

import asyncio
from typing import Any, final

__all__ = ("Watchdog",)

_TICKS = 8  # ticks per timeout: the precision of the cut-off


@final
class Watchdog:
    """Cancels the tasks whose call has been in flight for longer than ``timeout``.

    Args:
        timeout: The seconds a call may take.
    """

    __slots__ = ("_calls", "_expired", "_handle", "_loop", "_period", "_tick", "_used")

    def __init__(self, timeout: float) -> None:
        self._period = timeout / _TICKS
        self._tick = 0
        self._calls: dict[asyncio.Task[Any], int] = {}  # task -> the tick it started in
        self._expired: dict[asyncio.Task[Any], int] = {}  # task -> its cancel count before
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._used = False

    def enter(self) -> asyncio.Task[Any]:
        """Watch the current task's call from now; returns the task (for :meth:`leave`)."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - a coroutine awaited outside any task
            raise RuntimeError("a store call must run in a task")
        self._calls[task] = self._tick
        if self._handle is None or self._loop is not loop:
            self._loop = loop
            self._handle = loop.call_later(self._period, self._check)
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        """The call of ``task`` is over (answered, failed or cut off)."""
        del self._calls[task]
        self._used = True
        if self._expired:
            self._expired.pop(task, None)

    def timed_out(self, task: asyncio.Task[Any]) -> bool:
        """On a ``CancelledError`` in ``task``: whether it was this watchdog's doing alone.

        If so the cancellation is taken back (``uncancel``), and the caller raises its
        timeout error instead; if the task was also cancelled from elsewhere, it must
        propagate the ``CancelledError``.
        """
        before = self._expired.pop(task, None)
        return before is not None and task.uncancel() <= before

    def _check(self) -> None:
        self._tick = tick = self._tick + 1
        for task, start in self._calls.items():
            if tick - start > _TICKS and task not in self._expired:
                self._expired[task] = task.cancelling()
                task.cancel("no answer from the store within its timeout")
        if self._calls or self._used:
            self._used = False
            assert self._loop is not None
            self._handle = self._loop.call_later(self._period, self._check)
        else:
            self._handle = None

    def close(self) -> None:
        """Stop the timer (the calls in flight are no longer bounded)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
