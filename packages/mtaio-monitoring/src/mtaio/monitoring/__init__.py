"""System and application monitoring: thresholds, alerts, a profiler, Prometheus export.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``.
"""

from importlib.metadata import version as _version

__version__: str = _version("mtaio-monitoring")

__all__ = ()
