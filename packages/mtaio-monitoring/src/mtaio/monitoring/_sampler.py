"""The profiler's sampling mode: a thread reads the traced thread's stack at an interval.

Nothing runs in the sampled thread: the cost there is the GIL the sampler takes for a few
tens of microseconds per sample (well under 1 % of a core at the default 5 ms), the same
trade py-spy makes from outside the process. Frames seen in consecutive samples become one
trace; a frame's trace runs from the first sample that saw it to the first that did not, so
durations are multiples of the interval and short calls are seen only in proportion to the
time they take. Suspended coroutines are not on the stack: the figures say where the loop's
thread spends its time (CPU on the loop), not how long an await waited.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Iterator
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

from ._tracing import WRAPPER_FILENAME

if TYPE_CHECKING:
    from ._profiler import _Record

# Frames of the machinery (the event loop, threads, this package) are not the program's.
_HIDDEN = (
    os.path.join(os.path.dirname(asyncio.__file__ or "<asyncio>"), ""),
    threading.__file__ or "<threading>",
    os.path.join(os.path.dirname(__file__), ""),
    WRAPPER_FILENAME,
)


def _hidden(code: CodeType) -> bool:
    return code.co_filename.startswith(_HIDDEN) or code.co_filename.startswith("<frozen")


def _stack(frame: FrameType | None) -> list[tuple[int, CodeType]]:
    out: list[tuple[int, CodeType]] = []
    while frame is not None:
        code = frame.f_code
        if not _hidden(code):
            out.append((id(frame), code))
        frame = frame.f_back
    out.reverse()  # outermost first
    return out


def _name(code: CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)


class Sampler(threading.Thread):
    """Sample one thread's stack every ``interval`` seconds until :meth:`stop`.

    Args:
        target: The thread id to sample.
        interval: Seconds between samples.
        clock: The profiler's clock (trace start and end).
        ids: The profiler's id counter.
        append: Where finished traces go.
        loop: The event loop running in the target thread, to name the current task.
    """

    def __init__(
        self,
        target: int,
        interval: float,
        clock: Callable[[], float],
        ids: Iterator[int],
        append: Callable[[_Record], None],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        super().__init__(name="mtaio-profiler-sampler", daemon=True)
        self._target = target
        self._interval = interval
        self._clock = clock
        self._ids = ids
        self._append = append
        self._loop = loop
        self._halt = threading.Event()
        # The traces open now: (frame id, code) -> (trace id, start, task name), outermost first.
        self._open: list[tuple[tuple[int, CodeType], int, float, str | None]] = []
        self.samples = 0

    def _task_name(self) -> str | None:
        if self._loop is None:
            return None
        current: dict[Any, asyncio.Task[Any]] = getattr(asyncio.tasks, "_current_tasks", {})
        task = current.get(self._loop)
        return None if task is None else task.get_name()

    def sample(self) -> None:
        """Take one sample now (the thread calls this every interval)."""
        frame = sys._current_frames().get(self._target)
        now = self._clock()
        stack = _stack(frame)
        opened = self._open
        same = 0
        for (key, *_), seen in zip(opened, stack, strict=False):
            if key != seen:
                break
            same += 1
        self._close(same, now)
        if len(stack) > same:
            task = self._task_name()
            for key in stack[same:]:
                opened.append((key, next(self._ids), now, task))
        self.samples += 1

    def _close(self, keep: int, now: float) -> None:
        opened = self._open
        while len(opened) > keep:
            (_, code), tid, start, task = opened.pop()
            parent = opened[-1][1] if opened else None
            self._append((tid, parent, _name(code), start, now, None, task))

    def run(self) -> None:
        """Sample until stopped; close every open trace at the end."""
        while not self._halt.wait(self._interval):
            self.sample()
        self._close(0, self._clock())

    def stop(self) -> None:
        """Stop sampling and wait for the thread to end (its open traces are recorded)."""
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
