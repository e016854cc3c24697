"""Task execution with concurrency, rate and priority control, cancellation-safe queues and latches.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``. ``_executor.py`` holds :class:`TaskExecutor`,
``_batch.py`` the worker pool of ``gather``/``map`` and :class:`ResultStream`,
``_handle.py`` :class:`TaskHandle`, ``_support.py`` the helpers they share, ``_queues.py``
the queues, ``_latch.py`` :class:`Latch`, ``_errors.py`` the errors of this portion
(subclasses of :mod:`mtaio.exceptions` classes).
"""

import logging as _logging
from importlib.metadata import version as _version

from mtaio.typing import publish_module as _publish_module

from ._batch import ResultStream as ResultStream
from ._errors import ExecutorClosedError as ExecutorClosedError
from ._errors import QueueClosedError as QueueClosedError
from ._errors import QueueEmptyError as QueueEmptyError
from ._errors import QueueFullError as QueueFullError
from ._errors import TaskErrorGroup as TaskErrorGroup
from ._executor import DEFAULT_MAP_LIMIT as DEFAULT_MAP_LIMIT
from ._executor import ExecutorStats as ExecutorStats
from ._executor import TaskExecutor as TaskExecutor
from ._handle import TaskHandle as TaskHandle
from ._latch import Latch as Latch
from ._latch import LatchStats as LatchStats
from ._queues import AsyncQueue as AsyncQueue
from ._queues import LIFOQueue as LIFOQueue
from ._queues import PriorityQueue as PriorityQueue
from ._queues import QueueStats as QueueStats

# A library never configures logging; the NullHandler keeps Python's last-resort handler from
# printing this portion's records when the application configured none.
_logging.getLogger("mtaio.core").addHandler(_logging.NullHandler())

__version__: str = _version("mtaio-core")

__all__ = (
    # execution
    "TaskExecutor",
    "TaskHandle",
    "ResultStream",
    "DEFAULT_MAP_LIMIT",
    "ExecutorStats",
    # queues and synchronisation
    "AsyncQueue",
    "PriorityQueue",
    "LIFOQueue",
    "QueueStats",
    "Latch",
    "LatchStats",
    # errors
    "ExecutorClosedError",
    "QueueClosedError",
    "QueueEmptyError",
    "QueueFullError",
    "TaskErrorGroup",
)

# Reprs, tracebacks and pickles name the public path (mtaio.core.X), not a private module.
_publish_module(globals())
