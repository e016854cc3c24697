"""An asyncio event emitter with priorities, wildcards and operators, and pub/sub channels.

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``.
"""

from importlib.metadata import version as _version

__version__: str = _version("mtaio-events")

__all__ = ()
