"""A griffe extension for the API reference: read ``Example:`` sections as ``Examples:``.

The sources use Google docstrings, where ruff's pydocstyle accepts both spellings; griffe's
Google parser knows only the plural, and would render a singular section's doctest lines as
Markdown text (where ``TTLCache[str](default_ttl=60.0)`` reads as a broken link).
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
