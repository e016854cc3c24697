import tomllib
from pathlib import Path

import pytest

import new_package


def test_skeleton_has_every_file_and_no_namespace_init(tmp_path: Path) -> None:
    pkg = new_package.create(
        "mtaio-example", "example", "Examples for tests.", ["attrs>=23"], tmp_path
    )
    files = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file())
    assert files == [
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "src/mtaio/example/__init__.py",
        "src/mtaio/example/py.typed",
        "tests/test_packaging.py",
    ]
    assert not (pkg / "src/mtaio/__init__.py").exists()
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    assert meta["project"]["version"] == "0.1.0"
    assert meta["project"]["dependencies"] == ["mtaio-base>=0.1.0,<0.2", "attrs>=23"]
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["only-include"] == [
        "src/mtaio/example"
    ]
    assert "## Unreleased" in (pkg / "CHANGELOG.md").read_text()
    init = (pkg / "src/mtaio/example/__init__.py").read_text()
    assert '__version__: str = _version("mtaio-example")' in init
    assert "__all__ = ()" in init


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    new_package.create("mtaio-example", "example", "x", [], tmp_path)
    with pytest.raises(SystemExit, match="already exists"):
        new_package.create("mtaio-example", "example", "x", [], tmp_path)
