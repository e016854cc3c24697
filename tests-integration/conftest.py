"""Fixtures for the cross-package tests.

The seed guide (``seed/advanced-usage.md``, a verbatim copy of the project's specification)
is the source of the snippet tests: :func:`seed_snippet` runs a snippet's code exactly as the
guide prints it, so the tests cannot drift from the guide.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SEED = Path(__file__).parent / "seed" / "advanced-usage.md"

# Names the guide's snippets use without importing them (its text omits those imports);
# a user copying a snippet adds the same lines.
PREAMBLE = """\
import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any, TypeVar
T = TypeVar("T")
"""


def snippets() -> list[str]:
    """Every python code block of the seed guide, in order (snippet 1 is index 0)."""
    return re.findall(r"```python\n(.*?)```", SEED.read_text(encoding="utf-8"), flags=re.S)


def load_snippet(number: int, extra_preamble: str = "") -> dict[str, Any]:
    """Execute snippet ``number`` (1-based) verbatim as a module; return its namespace.

    The module is registered in ``sys.modules`` as a user's module would be (dataclasses and
    pickling look classes up there) and compiled with ``dont_inherit=True`` so that this
    file's own ``from __future__`` imports do not leak into the snippet.
    """
    code = snippets()[number - 1]
    module = types.ModuleType(f"seed_snippet_{number}")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    exec(compile(PREAMBLE + extra_preamble, "<preamble>", "exec", dont_inherit=True), namespace)
    exec(compile(code, f"<seed snippet {number}>", "exec", dont_inherit=True), namespace)
    return namespace


@pytest.fixture
def seed_snippet() -> Iterator[Callable[..., dict[str, Any]]]:
    """Load a seed snippet by number: ``ns = seed_snippet(10)``; unloaded after the test."""
    before = set(sys.modules)
    yield load_snippet
    for name in set(sys.modules) - before:
        if name.startswith("seed_snippet_"):
            del sys.modules[name]


@pytest.fixture
def seed_code() -> list[str]:
    """The code of every snippet of the seed guide, in order."""
    return snippets()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under the installed-wheels run, make sure mtaio really comes from site-packages."""
    import os

    if os.environ.get("MTAIO_EXPECT_INSTALLED") == "1":
        import mtaio.exceptions

        location = str(mtaio.exceptions.__file__)
        if "site-packages" not in location:
            raise pytest.UsageError(f"expected installed wheels, imported {location}")
