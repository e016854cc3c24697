"""Create a new mtaio distribution with the skeleton every package shares.

    python tools/new_package.py mtaio-example example "What it gives" [--dep psutil>=5.9]

The skeleton: pyproject.toml (static version 0.1.0, capped range on mtaio-base), README.md,
CHANGELOG.md (Keep a Changelog), LICENSE, src/mtaio/<portion>/{__init__.py, py.typed} and
tests/test_packaging.py. Never an mtaio/__init__.py: the namespace is native PEP 420.
Afterwards add the package to hatch.toml ([sources], solo matrix), pyproject.toml (mypy_path,
coverage, import-linter), the meta-package's dependencies and tools/packages.py.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_RANGE = "mtaio-base>=0.1.0,<0.2"

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.27"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
description = "{summary}"
readme = "README.md"
requires-python = ">=3.11"
license = "MIT"
license-files = ["LICENSE"]
authors = [{{ name = "The mtaio developers" }}]
keywords = ["asyncio", "async"]
classifiers = [
  "Development Status :: 3 - Alpha",
  "Framework :: AsyncIO",
  "Intended Audience :: Developers",
  "Programming Language :: Python :: 3",
  "Programming Language :: Python :: 3 :: Only",
  "Programming Language :: Python :: 3.11",
  "Programming Language :: Python :: 3.12",
  "Programming Language :: Python :: 3.13",
  "Typing :: Typed",
]
dependencies = [{deps}]

[tool.hatch.build.targets.wheel]
only-include = ["src/mtaio/{portion}"]
sources = ["src"]
"""

README = """\
# {dist}

{summary}

Part of [mtaio](../../README.md), the asyncio toolkit. Install it alone with
`pip install {dist}`, or every package with `pip install mtaio`.

```python
import mtaio.{portion}
```
"""

CHANGELOG = """\
# Changelog

All notable changes to {dist} are documented here. The format follows
[Keep a Changelog](https://keepachangelog.com/en/1.1.0/) and the package follows
[Semantic Versioning](https://semver.org/).

## Unreleased

### Added

- First release: {summary_lower}
"""

LICENSE = """\
MIT License

Copyright (c) {year} The mtaio developers

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

INIT = '''\
"""{summary}

Layout: the implementation lives in private modules (``_*.py``); this module re-exports
the public API and lists it in ``__all__``.
"""

from importlib.metadata import version as _version

__version__: str = _version("{dist}")

__all__ = ()
'''

TEST_PACKAGING = """\
from importlib.metadata import version

import mtaio.{portion}


def test_version_matches_metadata() -> None:
    assert mtaio.{portion}.__version__ == version("{dist}")
"""


def create(dist: str, portion: str, summary: str, deps: list[str], root: Path = ROOT) -> Path:
    """Write the skeleton of ``dist`` under ``root/packages`` and return its folder."""
    pkg = root / "packages" / dist
    if pkg.exists():
        raise SystemExit(f"{pkg} already exists")
    src = pkg / "src" / "mtaio" / portion
    src.mkdir(parents=True)
    (pkg / "tests").mkdir()
    fields = {
        "dist": dist,
        "portion": portion,
        "summary": summary,
        "summary_lower": summary[:1].lower() + summary[1:],
        "deps": ", ".join(f'"{d}"' for d in [BASE_RANGE, *deps]),
        "year": datetime.date.today().year,
    }
    (pkg / "pyproject.toml").write_text(PYPROJECT.format(**fields))
    (pkg / "README.md").write_text(README.format(**fields))
    (pkg / "CHANGELOG.md").write_text(CHANGELOG.format(**fields))
    (pkg / "LICENSE").write_text(LICENSE.format(**fields))
    (src / "__init__.py").write_text(INIT.format(**fields))
    (src / "py.typed").write_text("")
    (pkg / "tests" / "test_packaging.py").write_text(TEST_PACKAGING.format(**fields))
    return pkg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", help="distribution name, e.g. mtaio-example")
    parser.add_argument("portion", help="import portion under mtaio, e.g. example")
    parser.add_argument("summary", help="one sentence: what the package gives")
    parser.add_argument("--dep", action="append", default=[], help="an extra dependency")
    args = parser.parse_args(argv)
    print(create(args.dist, args.portion, args.summary, args.dep))


if __name__ == "__main__":
    main()
