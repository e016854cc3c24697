"""The local cache's documentation runs: docstring examples and the README example."""

from __future__ import annotations

import contextlib
import doctest
import io
import re
from pathlib import Path
from types import ModuleType

import pytest

from mtaio.cache import (
    _cached,
    _flight,
    _listeners,
    _policies,
    _protocol,
    _stats,
    _transaction,
    _ttl,
    _wheel,
)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    "module",
    [_ttl, _cached, _policies, _stats, _protocol, _wheel, _flight, _listeners, _transaction],
)
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
    # 100 concurrent callers: one miss loads, 99 wait on it (single flight)
    assert "CacheStats(hits=1, misses=1," in out.getvalue()
    assert "coalesced=99)" in out.getvalue()
