"""Typed asyncio data pipelines, stream operators and observables.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``. ``_pipeline.py`` holds :class:`Pipeline`, the
stages and the error policies; ``_stream.py`` :class:`Stream`; ``_observable.py`` the
observables; ``_errors.py`` the errors of this portion; ``_aio.py`` the async-iterator
plumbing they share.
"""

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
from ._pipeline import BatchStage as BatchStage
from ._pipeline import DeadLetter as DeadLetter
from ._pipeline import FilterStage as FilterStage
from ._pipeline import MapStage as MapStage
from ._pipeline import OnError as OnError
from ._pipeline import Pipeline as Pipeline
from ._pipeline import Retry as Retry
from ._pipeline import Stage as Stage
from ._pipeline import StageStats as StageStats
from ._stream import Stream as Stream

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
