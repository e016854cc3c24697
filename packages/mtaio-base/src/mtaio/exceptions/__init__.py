"""The exception tree of mtaio, and helpers to format, wrap and raise its errors.

Every error mtaio raises is an :class:`MTAIOError`, and also the builtin it means where one
exists, so ``except TimeoutError:`` or ``except KeyError:`` in user code keeps working.

Layout: ``_errors.py`` holds the classes, ``_format.py`` the formatting and wrapping helpers,
``_validate.py`` the argument checks every package uses for clear construction errors.
"""

from importlib.metadata import version as _version

from ._errors import CacheConnectionError as CacheConnectionError
from ._errors import CacheError as CacheError
from ._errors import CacheKeyError as CacheKeyError
from ._errors import CircuitBreakerError as CircuitBreakerError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConfigurationTypeError as ConfigurationTypeError
from ._errors import DataError as DataError
from ._errors import DependencyError as DependencyError
from ._errors import EventEmitError as EventEmitError
from ._errors import EventError as EventError
from ._errors import EventHandlerError as EventHandlerError
from ._errors import ExecutionError as ExecutionError
from ._errors import MonitoringError as MonitoringError
from ._errors import MTAIOError as MTAIOError
from ._errors import MTAIOErrorGroup as MTAIOErrorGroup
from ._errors import PipelineError as PipelineError
from ._errors import RateLimitError as RateLimitError
from ._errors import ResourceError as ResourceError
from ._errors import ResourceLimitError as ResourceLimitError
from ._errors import ResourceLockError as ResourceLockError
from ._errors import ResourceTimeoutError as ResourceTimeoutError
from ._errors import RetryError as RetryError
from ._errors import StageError as StageError
from ._errors import StreamError as StreamError
from ._errors import TimeoutError as TimeoutError
from ._format import format_exception as format_exception
from ._format import wrap_exception as wrap_exception
from ._publish import publish_module as _publish_module
from ._validate import require_callable as require_callable
from ._validate import require_choice as require_choice
from ._validate import require_non_negative as require_non_negative
from ._validate import require_non_negative_int as require_non_negative_int
from ._validate import require_number as require_number
from ._validate import require_positive as require_positive
from ._validate import require_positive_int as require_positive_int

__version__: str = _version("mtaio-base")

__all__ = (
    "MTAIOError",
    "MTAIOErrorGroup",
    "ConfigurationError",
    "ConfigurationTypeError",
    "DependencyError",
    "ExecutionError",
    "TimeoutError",
    "RetryError",
    "CircuitBreakerError",
    "ResourceError",
    "ResourceLimitError",
    "ResourceTimeoutError",
    "RateLimitError",
    "ResourceLockError",
    "CacheError",
    "CacheKeyError",
    "CacheConnectionError",
    "EventError",
    "EventEmitError",
    "EventHandlerError",
    "DataError",
    "PipelineError",
    "StageError",
    "StreamError",
    "MonitoringError",
    "format_exception",
    "wrap_exception",
    "require_callable",
    "require_choice",
    "require_non_negative",
    "require_non_negative_int",
    "require_number",
    "require_positive",
    "require_positive_int",
)

# Reprs, tracebacks and pickles name the public path (mtaio.exceptions.X), not a private module.
_publish_module(globals())
