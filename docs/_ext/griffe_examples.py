"""A griffe extension for the API reference.

- Read ``Example:`` sections as ``Examples:``. The sources use Google docstrings, where
  ruff's pydocstyle accepts both spellings; griffe's Google parser knows only the plural, and
  would render a singular section's doctest lines as Markdown text (where
  ``TTLCache[str](default_ttl=60.0)`` reads as a broken link).
- Give a class constructed by ``__new__`` (no ``__init__`` of its own, as ``RateLimiter``,
  whose ``__new__`` returns the Redis-backed subclass when given ``store=``) the signature of
  that ``__new__``: griffe takes a class's parameters from ``__init__`` only, so the class
  docstring's ``Args:`` would otherwise be reported as parameters the signature lacks.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename every ``Example:`` section heading to ``Examples:`` before parsing."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object griffe loads."""
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        """Expose a ``__new__``'s parameters as the class's when it has no ``__init__``."""
        new = cls.members.get("__new__")
        if "__init__" in cls.members or not isinstance(new, griffe.Function):
            return
        params = list(new.parameters)
        if params and params[0].name == "cls":
            params = params[1:]
        init = griffe.Function(
            "__init__",
            lineno=new.lineno,
            endlineno=new.endlineno,
            parameters=griffe.Parameters(
                griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword),
                *params,
            ),
            returns="None",
        )
        cls.set_member("__init__", init)
