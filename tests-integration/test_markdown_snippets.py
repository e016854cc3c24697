"""Every Python example of the READMEs and the documentation site runs as the page shows it.

The examples are read from the Markdown by tools/snippets.py (never copied here), one test
each; ``python tools/snippets.py mypy`` type-checks the same examples with mypy --strict.
"""

import linecache
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's root
from tools import snippets

SNIPPETS = snippets.collect()


def test_the_documentation_has_examples_in_every_place() -> None:
    places = {s.path.relative_to(snippets.ROOT).parts[0] for s in SNIPPETS}
    assert {"README.md", "packages", "docs"} <= places
    assert all(s.skip is None for s in SNIPPETS), [s.id for s in SNIPPETS if s.skip]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_the_example_runs(
    snippet: snippets.Snippet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if snippet.skip is not None:
        pytest.skip(snippet.skip)
    # A reader runs an example as a script (``__main__``, as runpy does it), in a folder of
    # their own; the examples assert what they promise, so running is the test.
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("__main__")
    module.__dict__["__file__"] = str(tmp_path / f"{snippet.module_name}.py")
    monkeypatch.setitem(sys.modules, "__main__", module)
    # tracebacks show the example's lines (numbered from the start of its block)
    lines = snippet.code.splitlines(keepends=True)
    monkeypatch.setitem(linecache.cache, snippet.id, (len(snippet.code), None, lines, snippet.id))
    code = compile(snippet.code, snippet.id, "exec", dont_inherit=True)
    exec(code, module.__dict__)
