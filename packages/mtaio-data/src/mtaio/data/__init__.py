"""Typed asyncio data pipelines, stream operators and observables.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``. ``_pipeline.py`` holds :class:`Pipeline` and
its two engines, ``_stages.py`` the stages, ``_policies.py`` the error policies,
``_stream.py`` :class:`Stream`, ``_observable.py`` the observables, ``_errors.py`` the
errors of this portion and ``_aio.py`` the async-iterator plumbing they share.
"""

import logging as _logging
from importlib.metadata import version as _version

from mtaio.typing import publish_module as _publish_module

from ._errors import PipelineErrorGroup as PipelineErrorGroup
from ._observable import Change as Change
from ._observable import ChangeType as ChangeType
from ._observable import Observable as Observable
from ._observable import ObservableStats as ObservableStats
from ._observable import ObservableValue as ObservableValue
from ._observable import Observer as Observer
from ._observable import Subscription as Subscription
from ._pipeline import Pipeline as Pipeline
from ._policies import DeadLetter as DeadLetter
from ._policies import OnError as OnError
from ._policies import Retry as Retry
from ._stages import BatchStage as BatchStage
from ._stages import FilterStage as FilterStage
from ._stages import MapStage as MapStage
from ._stages import Stage as Stage
from ._stages import StageStats as StageStats
from ._stream import Stream as Stream

# A library never configures logging; the NullHandler keeps Python's last-resort handler from
# printing this portion's records when the application configured none.
_logging.getLogger("mtaio.data").addHandler(_logging.NullHandler())

__version__: str = _version("mtaio-data")

__all__ = (
    # pipelines
    "Pipeline",
    "Stage",
    "MapStage",
    "FilterStage",
    "BatchStage",
    "StageStats",
    "OnError",
    "Retry",
    "DeadLetter",
    "PipelineErrorGroup",
    # streams
    "Stream",
    # observables
    "Observable",
    "ObservableValue",
    "ObservableStats",
    "Subscription",
    "Observer",
    "Change",
    "ChangeType",
)

# Reprs, tracebacks and pickles name the public path (mtaio.data.X), not a private module.
_publish_module(globals())
