"""Errors specific to mtaio.core, each a subclass of the matching :mod:`mtaio.exceptions` class."""

from __future__ import annotations

import asyncio

from mtaio.exceptions import ExecutionError, MTAIOErrorGroup, ResourceError, ResourceLimitError


class ExecutorClosedError(ExecutionError):
    """The :class:`~mtaio.core.TaskExecutor` was closed before or while the work could run."""


class TaskErrorGroup(ExecutionError, MTAIOErrorGroup):
    """Several pieces of work failed in one ``gather``/``map`` call with ``collect_errors=True``.

    An :class:`ExceptionGroup` (``except* ValueError:`` picks out the failures you handle)
    and an :class:`~mtaio.exceptions.ExecutionError` (``except MTAIOError:`` catches the
    whole report). :attr:`exceptions` holds every failure, in input order; work that
    cancelled itself appears as an ``ExecutionError`` whose ``__cause__`` is the
    :class:`asyncio.CancelledError` (a group holds exceptions, not cancellations).

    .. versionadded:: 0.2
    """


class QueueClosedError(ResourceError):
    """The queue was closed: nothing can be put, and a drained closed queue gives nothing more."""


class QueueEmptyError(ResourceError, asyncio.QueueEmpty):
    """``get_nowait`` found the queue empty (also an :class:`asyncio.QueueEmpty`)."""


class QueueFullError(ResourceLimitError, asyncio.QueueFull):
    """``put_nowait`` found the queue full (also an :class:`asyncio.QueueFull`)."""
