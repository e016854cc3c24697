"""The local cache's documentation runs: docstring examples and the README example."""

from __future__ import annotations

import contextlib
import doctest
import io
import re
from pathlib import Path
from types import ModuleType

import pytest

from mtaio.cache import _cached, _policies, _stats, _ttl

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("module", [_ttl, _cached, _policies, _stats])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, raise_on_error=True)
    assert result.failed == 0


def test_readme_local_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Local cache", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(match.group(1), str(README), "exec"), {"__name__": "readme"})
    assert "gone: greeting deleted" in out.getvalue()
    assert "CacheStats(hits=1, misses=100" in out.getvalue()
