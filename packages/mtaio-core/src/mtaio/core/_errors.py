"""Errors specific to mtaio.core, each a subclass of the matching :mod:`mtaio.exceptions` class."""

from __future__ import annotations

import asyncio

from mtaio.exceptions import ExecutionError, ResourceError, ResourceLimitError


class ExecutorClosedError(ExecutionError):
    """The :class:`~mtaio.core.TaskExecutor` was closed before or while the work could run."""


class QueueClosedError(ResourceError):
    """The queue was closed: nothing can be put, and a drained closed queue gives nothing more."""


class QueueEmptyError(ResourceError, asyncio.QueueEmpty):
    """``get_nowait`` found the queue empty (also an :class:`asyncio.QueueEmpty`)."""


class QueueFullError(ResourceLimitError, asyncio.QueueFull):
    """``put_nowait`` found the queue full (also an :class:`asyncio.QueueFull`)."""
