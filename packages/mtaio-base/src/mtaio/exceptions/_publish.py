"""``publish_module``: a portion's exports name their public module.

It lives here, at the bottom of mtaio-base, so that ``mtaio.exceptions`` needs nothing from
``mtaio.typing`` (which re-exports it) and the two portions import in one direction only:
typing -> exceptions.
"""

from __future__ import annotations

import inspect
from typing import Any


def publish_module(namespace: dict[str, Any]) -> None:
    """Make a portion's exports name their public module instead of the private one.

    Call it at the end of a portion's ``__init__.py`` as ``publish_module(globals())``: every
    class and function listed in ``__all__`` that was defined in one of the portion's private
    submodules (``mtaio.events._emitter``) gets ``__module__`` set to the portion
    (``mtaio.events``), so reprs, tracebacks, documentation and pickles show the import path
    users write. Objects from elsewhere (re-exported stdlib or typing objects) are left alone.

    Args:
        namespace: The portion's ``globals()``, holding ``__name__`` and ``__all__``.
    """
    name = namespace["__name__"]
    private = name + "._"
    for public in namespace.get("__all__", ()):
        obj = namespace[public]
        defines = isinstance(obj, type) or inspect.isfunction(obj)
        if defines and obj.__module__.startswith(private):
            obj.__module__ = name
