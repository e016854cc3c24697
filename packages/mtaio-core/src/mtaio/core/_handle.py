"""TaskHandle: the future-like handle of work given to ``TaskExecutor.submit``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar, final

T = TypeVar("T")

PENDING, RUNNING, DONE, FAILED, CANCELLED = 0, 1, 2, 3, 4


@final
class TaskHandle(Generic[T]):
    """The handle of work given to :meth:`TaskExecutor.submit`: await it for the result.

    It behaves like the future of a task: ``await handle`` returns the result or raises the
    work's exception; :meth:`cancel` cancels the work, whether it is still pending or already
    running; cancelling a task that awaits the handle cancels the work too (as with
    :class:`asyncio.Task`). Unlike a task it is not scheduled on its own: the executor's
    workers run it, and it creates a future only for awaiters that arrive before the end.
    """

    __slots__ = ("_aw", "_listeners", "_priority", "_result", "_state", "_worker")

    def __init__(self, aw: Awaitable[T], priority: float) -> None:
        self._aw = aw
        self._priority = priority
        self._state = PENDING
        self._result: Any = None  # the value, or the exception when failed or cancelled
        # Futures of awaiters and done callbacks, created only when someone waits.
        self._listeners: list[asyncio.Future[None] | Callable[[TaskHandle[T]], object]] | None
        self._listeners = None
        self._worker: asyncio.Task[None] | None = None  # set while the work runs

    @property
    def priority(self) -> float:
        """The priority given to :meth:`TaskExecutor.submit` (lower starts first)."""
        return self._priority

    def __await__(self) -> Generator[Any, None, T]:
        if self._state == DONE:
            return self._result  # type: ignore[no-any-return]
        if self._state < DONE:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._listeners is None:
                self._listeners = [waiter]
            else:
                self._listeners.append(waiter)
            try:
                yield from waiter.__await__()
            except asyncio.CancelledError:
                if self._state < DONE:
                    self.cancel()  # the awaiter was cancelled: so is the work, as for a task
                raise
        return self.result()

    def _settle(self, state: int, result: Any) -> None:
        self._state = state
        self._result = result
        listeners, self._listeners = self._listeners, None
        for listener in listeners or ():
            if isinstance(listener, asyncio.Future):
                if not listener.done():
                    if state == CANCELLED:
                        listener.cancel()
                    else:
                        listener.set_result(None)
            else:
                asyncio.get_running_loop().call_soon(listener, self)

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel the work: it will not start, or, if running, it is cancelled.

        Returns:
            False if the work had already finished, True otherwise.
        """
        if self._state >= DONE:
            return False
        worker = self._worker
        if worker is not None and worker is not asyncio.current_task():
            # The worker sees a CancelledError inside the work, finds the handle cancelled,
            # un-cancels itself and goes on with the next work. (Work cancelling its own
            # handle just runs on; its result is dropped.)
            worker.cancel()
        self._settle(CANCELLED, asyncio.CancelledError(msg) if msg else None)
        return True

    def done(self) -> bool:
        """Return True once the work has finished, failed or been cancelled."""
        return self._state >= DONE

    def cancelled(self) -> bool:
        """Return True if the work was cancelled."""
        return self._state == CANCELLED

    def running(self) -> bool:
        """Return True while the work runs."""
        return self._state == RUNNING

    def result(self) -> T:
        """Return the result of finished work.

        Raises:
            asyncio.CancelledError: If the work was cancelled.
            asyncio.InvalidStateError: If the work has not finished.
            BaseException: What the work raised, if it failed.
        """
        state = self._state
        if state == DONE:
            return self._result  # type: ignore[no-any-return]
        if state == FAILED:
            raise self._result
        if state == CANCELLED:
            raise self._result or asyncio.CancelledError()
        raise asyncio.InvalidStateError("the work has not finished")

    def exception(self) -> BaseException | None:
        """Return the exception of failed work, or None if it succeeded.

        Raises:
            asyncio.CancelledError: If the work was cancelled.
            asyncio.InvalidStateError: If the work has not finished.
        """
        state = self._state
        if state == FAILED:
            return self._result  # type: ignore[no-any-return]
        if state == DONE:
            return None
        return self.result()  # type: ignore[return-value]  # raises

    def add_done_callback(self, callback: Callable[[TaskHandle[T]], object]) -> None:
        """Call ``callback(handle)`` soon after the work is done (at once if it is)."""
        if self._state >= DONE:
            asyncio.get_running_loop().call_soon(callback, self)
        elif self._listeners is None:
            self._listeners = [callback]
        else:
            self._listeners.append(callback)

    def __repr__(self) -> str:
        state = ("pending", "running", "done", "failed", "cancelled")[self._state]
        return f"<TaskHandle {state} priority={self._priority!r}>"
