"""The a la carte guarantee: every distribution installs and imports alone.

1. Build every sdist and wheel from packages/ into one folder (wheels are built from the sdist,
   so a file missing from the sdist fails here too).
2. Check each wheel: no ``mtaio/__init__.py`` (the namespace is native PEP 420) and a
   ``py.typed`` in each portion it ships, never a shared ``mtaio/py.typed``.
3. For each distribution, make a fresh venv and install it from the local folder only
   (``--no-index``: the index's ``mtaio`` 0.1.0 is the predecessor and must never be picked),
   import every module of its portions, and assert that exactly the portions it declares
   (its own plus its sibling dependencies) are importable: an undeclared import of a sibling
   fails with ModuleNotFoundError, an undeclared extra portion fails the set comparison.
4. Install the meta-package alone, import everything, and check that a module placed in the
   ``mtaio`` namespace on PYTHONPATH stays importable beside the installed portions.
5. With ``--integration``, install the root's ``test`` dependency group into that venv and run
   tests-integration there: the cross-package suite against installed wheels, not the editable
   workspace (MTAIO_EXPECT_INSTALLED=1 makes the suite assert where mtaio was imported from).

Third-party requirements (psutil, redis, ...) are downloaded once into a wheelhouse beside the
local folder, so the install itself never asks an index.

    python tools/check_alacarte.py [--dist DIR] [--keep] [--skip-build] [--integration] [NAME ...]
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

from workspace import ALL, ALL_PORTIONS, BY_NAME, META, ROOT, Dist, reachable_portions

PROBE = textwrap.dedent(
    """
    import importlib, importlib.util, json, pkgutil, sys
    portions, known, expect = json.loads(sys.argv[1])
    imported = []
    for portion in portions:
        module = importlib.import_module(portion)
        imported.append(portion)
        for info in pkgutil.walk_packages(module.__path__, portion + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue  # importing a __main__ runs the program
            importlib.import_module(info.name)
            imported.append(info.name)
    present = sorted(p for p in known if importlib.util.find_spec(p) is not None)
    missing = sorted(set(expect) - set(present))
    extra = sorted(set(present) - set(expect))
    print(json.dumps({"imported": len(imported), "missing": missing, "extra": extra}))
    sys.exit(1 if missing or extra else 0)
    """
)

MASK_PROBE = textwrap.dedent(
    """
    import importlib
    import mtaio.exceptions, mtaio.zzz_probe
    assert mtaio.zzz_probe.OK is True
    assert len(list(mtaio.__path__)) >= 2, list(mtaio.__path__)
    """
)


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def build(dists: list[Dist], out: Path) -> None:
    for dist in dists:
        uv = shutil.which("uv")
        cmd = (
            [uv, "build", "--quiet", "--sdist", "--wheel", "--out-dir", str(out), str(dist.path)]
            if uv
            else [sys.executable, "-m", "build", "--outdir", str(out), str(dist.path)]
        )
        result = run(cmd)
        if result.returncode:
            raise SystemExit(f"building {dist.name} failed:\n{result.stdout}{result.stderr}")
        print(f"built   {dist.name}", flush=True)


def wheel_of(dist: Dist, folder: Path) -> Path:
    stem = dist.name.replace("-", "_")
    wheels = sorted(folder.glob(f"{stem}-*.whl"))
    if not wheels:
        raise SystemExit(f"no wheel for {dist.name} in {folder}")
    return wheels[-1]


def check_wheel(dist: Dist, wheel: Path) -> list[str]:
    names = zipfile.ZipFile(wheel).namelist()
    problems = []
    for bad in ("mtaio/__init__.py", "mtaio/py.typed"):
        if bad in names:
            problems.append(f"{wheel.name} ships {bad}: the mtaio namespace must stay PEP 420")
    for portion in dist.portions:
        folder = portion.replace(".", "/")
        if f"{folder}/py.typed" not in names:
            problems.append(f"{wheel.name} lacks {folder}/py.typed")
        if f"{folder}/__init__.py" not in names:
            problems.append(f"{wheel.name} lacks {folder}/__init__.py")
    shipped = {n.split("/")[1] for n in names if n.startswith("mtaio/") and n.count("/") >= 2}
    expected = {p.split(".")[1] for p in dist.portions}
    if shipped != expected:
        problems.append(
            f"{wheel.name} ships portions {sorted(shipped)}, expected {sorted(expected)}"
        )
    return problems


def third_party_requirements(wheels: list[Path]) -> list[str]:
    """Every non-mtaio requirement of the wheels, extras included (markers dropped)."""
    reqs: set[str] = set()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            meta = email.parser.Parser().parsestr(zf.read(meta_name).decode())
        for req in meta.get_all("Requires-Dist") or []:
            spec = req.split(";", 1)[0].strip()
            if not spec.lower().startswith("mtaio"):
                reqs.add(spec)
    return sorted(reqs)


def fill_wheelhouse(reqs: list[str], house: Path, work: Path) -> None:
    if not reqs:
        return
    pip_python = make_venv(work / "downloader", seed=True)  # a venv with pip, for `pip download`
    cmd = [str(pip_python), "-m", "pip", "download", "--quiet", "--dest", str(house), *reqs]
    result = run(cmd)
    if result.returncode:
        raise SystemExit(f"downloading {reqs} failed:\n{result.stdout}{result.stderr}")


def make_venv(path: Path, seed: bool = False) -> Path:
    uv = shutil.which("uv")
    if uv:
        cmd = [uv, "venv", "--quiet", "--python", sys.executable, str(path)]
        cmd += ["--seed"] if seed else []
    else:
        cmd = [sys.executable, "-m", "venv", str(path)]
    result = run(cmd)
    if result.returncode:
        raise SystemExit(f"creating {path} failed:\n{result.stderr}")
    return path / "bin" / "python"


def install(
    python: Path, requirement: str, folders: list[Path]
) -> subprocess.CompletedProcess[str]:
    links = [arg for folder in folders for arg in ("--find-links", str(folder))]
    uv = shutil.which("uv")
    if uv:
        cmd = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--no-index",
            *links,
            requirement,
        ]
    else:
        cmd = [str(python), "-m", "pip", "install", "--quiet", "--no-index", *links, requirement]
    return run(cmd)


def check_dist(
    dist: Dist, folders: list[Path], work: Path, requirement: str | None = None
) -> list[str]:
    requirement = requirement or dist.name
    python = make_venv(work / f"venv-{requirement}")
    installed = install(python, requirement, folders)
    if installed.returncode:
        return [f"installing {requirement} alone failed:\n{installed.stdout}{installed.stderr}"]
    portions = sorted(reachable_portions(dist)) if dist is META else list(dist.portions)
    expect = sorted(reachable_portions(dist))

    probe = run([str(python), "-c", PROBE, json.dumps([portions, list(ALL_PORTIONS), expect])])
    if probe.returncode:
        return [f"{requirement}: {probe.stdout.strip()}{probe.stderr.strip()[-2000:]}"]
    report = json.loads(probe.stdout)
    print(
        f"ok      {requirement}: imported {report['imported']} modules; portions {expect}",
        flush=True,
    )
    return []


def check_namespace_masking(folders: list[Path], work: Path) -> list[str]:
    python = work / f"venv-{META.name}" / "bin" / "python"
    extra = work / "masking" / "mtaio"
    extra.mkdir(parents=True)
    (extra / "zzz_probe.py").write_text("OK = True\n")
    result = run([str(python), "-c", MASK_PROBE], env={"PYTHONPATH": str(extra.parent)})
    if result.returncode:
        return [f"a module on PYTHONPATH in the mtaio namespace was masked:\n{result.stderr}"]
    print("ok      namespace: a third-party mtaio.zzz_probe imports beside the installed portions")
    return []


def run_integration(work: Path, pytest_args: list[str]) -> list[str]:
    """Run tests-integration with the meta-package's venv (installed wheels)."""
    python = work / f"venv-{META.name}" / "bin" / "python"
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    test_deps = [d for g in ("test", "demo") for d in groups[g] if isinstance(d, str)]
    uv = shutil.which("uv")
    cmd = (
        [uv, "pip", "install", "--quiet", "--python", str(python), *test_deps]
        if uv
        else [str(python), "-m", "pip", "install", "--quiet", *test_deps]
    )
    result = run(cmd)
    if result.returncode:
        return [f"installing the test dependencies failed:\n{result.stdout}{result.stderr}"]
    print("running tests-integration against the installed wheels", flush=True)
    env = {**os.environ, "MTAIO_EXPECT_INSTALLED": "1"}
    env.pop("PYTHONPATH", None)
    code = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "tests-integration", *pytest_args],
        cwd=ROOT,
        env=env,
        check=False,
    ).returncode
    return [f"tests-integration failed against the installed wheels (exit {code})"] if code else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="distributions to check (default: all)")
    parser.add_argument("--dist", type=Path, help="build into / reuse this folder")
    parser.add_argument("--skip-build", action="store_true", help="reuse the wheels in --dist")
    parser.add_argument("--keep", action="store_true", help="keep the venvs for inspection")
    parser.add_argument(
        "--integration", action="store_true", help="run tests-integration on the installed wheels"
    )
    args = parser.parse_args(argv)
    dists = [BY_NAME[n] for n in args.names] if args.names else list(ALL)
    work = Path(tempfile.mkdtemp(prefix="mtaio-alacarte-"))
    out = args.dist or work / "dist"
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    try:
        if not args.skip_build:
            build(list(ALL), out)
        wheels = {d.name: wheel_of(d, out) for d in ALL}
        for dist in ALL:
            problems += check_wheel(dist, wheels[dist.name])
        house = work / "wheelhouse"
        house.mkdir()
        fill_wheelhouse(third_party_requirements(list(wheels.values())), house, work)
        folders = [out, house]
        for dist in dists:
            problems += check_dist(dist, folders, work)
        if META in dists:
            problems += check_namespace_masking(folders, work)
            if "mtaio-cache" in BY_NAME:
                problems += check_dist(BY_NAME["mtaio-cache"], folders, work, "mtaio-cache[redis]")
            if args.integration and not problems:
                problems += run_integration(work, [])
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"FAIL    {problem}", file=sys.stderr)
    print(f"a la carte check: {len(dists)} distributions, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
