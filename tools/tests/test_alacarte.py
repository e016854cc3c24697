import zipfile
from pathlib import Path

import check_alacarte
import workspace as ws


def make_wheel(path: Path, names: list[str], requires: tuple[str, ...] | list[str] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, "")
        meta = "Metadata-Version: 2.4\nName: x\n" + "".join(
            f"Requires-Dist: {r}\n" for r in requires
        )
        zf.writestr("x-0.1.0.dist-info/METADATA", meta)
    return path


def test_a_wheel_with_a_namespace_init_is_refused(tmp_path: Path) -> None:
    dist = ws.BY_NAME["mtaio-events"]
    good = ["mtaio/events/__init__.py", "mtaio/events/py.typed"]
    assert check_alacarte.check_wheel(dist, make_wheel(tmp_path / "good.whl", good)) == []
    bad = make_wheel(tmp_path / "bad.whl", [*good, "mtaio/__init__.py", "mtaio/py.typed"])
    problems = check_alacarte.check_wheel(dist, bad)
    assert any("ships mtaio/__init__.py" in p for p in problems)
    assert any("ships mtaio/py.typed" in p for p in problems)


def test_a_wheel_missing_py_typed_or_shipping_a_sibling_is_refused(tmp_path: Path) -> None:
    dist = ws.BY_NAME["mtaio-events"]
    wheel = make_wheel(tmp_path / "w.whl", ["mtaio/events/__init__.py", "mtaio/cache/__init__.py"])
    problems = check_alacarte.check_wheel(dist, wheel)
    assert any("lacks mtaio/events/py.typed" in p for p in problems)
    assert any("ships portions ['cache', 'events']" in p for p in problems)


def test_third_party_requirements_skip_siblings_and_markers(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "w.whl",
        [],
        ["mtaio-base<0.2,>=0.1.0", "psutil>=5.9", 'redis[hiredis]>=5.0; extra == "redis"'],
    )
    assert check_alacarte.third_party_requirements([wheel]) == [
        "psutil>=5.9",
        "redis[hiredis]>=5.0",
    ]


def test_reachable_portions_follow_sibling_dependencies() -> None:
    assert ws.reachable_portions(ws.BY_NAME["mtaio-core"]) == {
        "mtaio.core",
        "mtaio.exceptions",
        "mtaio.testing",
        "mtaio.typing",
    }
    assert ws.reachable_portions(ws.META) == set(ws.ALL_PORTIONS)


def test_the_table_mirrors_the_declared_dependencies() -> None:
    # tools/workspace.py must agree with each pyproject, or the a la carte check tests a fiction.
    for dist in ws.DISTS:
        text = (dist.path / "pyproject.toml").read_text()
        for sibling in ws.DISTS:
            declared = f'"{sibling.name}>=' in text or f'"{sibling.name}[' in text
            assert declared == (sibling.name in dist.siblings), (dist.name, sibling.name)
