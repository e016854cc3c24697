"""The README's commands, on a machine with nothing but Python 3.11+ and pip.

    python tools/dev.py demo [ARGS]    # run the demo on embedded defaults
    python tools/dev.py check          # every check: lint, types, all tests on Python 3.11,
                                       # 3.12 and 3.13, each package alone (>= 90% branch
                                       # coverage), a la carte, the documentation site
    python tools/dev.py docs [--serve] # build the documentation into site/ (or serve it)
    python tools/dev.py wheels         # build every distribution's wheel into dist/
    python tools/dev.py hatch ARGS     # run the hatch these commands use: hatch ARGS

Hatch runs everything. When no hatch >= 1.18 is on PATH, one is installed with pip into
``.tools-venv/`` beside this checkout (once), so nothing is installed into your Python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import venv
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_VENV = ROOT / ".tools-venv"
HATCH_REQ = "hatch>=1.18"
# The versions the classifiers claim; the hatch-test matrix in hatch.toml lists the same.
PYTHONS = ("3.11", "3.12", "3.13")

CHECKS: list[tuple[str, list[list[str]]]] = [
    ("lint: ruff check, ruff format --check, import-linter", [["run", "lint:check"]]),
    ("types: mypy --strict over every source and test", [["run", "types:check"]]),
    (
        "tests on Python 3.11: every package and tests-integration, branch coverage",
        [["test", "--python", "3.11", "--cover"]],
    ),
    # The other versions run everything but the tests marked slow (real OS processes,
    # attacks on a child node, the demo), which 3.11 runs: the whole check stays well
    # under 15 minutes on two cores.
    *(
        (
            f"tests on Python {v}: every package and tests-integration, but the slow ones",
            [["test", "--python", v, "--", "-m", "not slow"]],
        )
        for v in PYTHONS[1:]
    ),
    (
        "each package alone, >= 90% branch coverage from its own tests",
        # The solo envs install sibling packages as built copies, which hatch would keep
        # while their version number stays the same: start them afresh from this checkout.
        [["env", "remove", "solo"], ["run", "solo:test"]],
    ),
    ("a la carte: build, install each distribution alone, import", [["run", "alacarte:check"]]),
    ("docs: mkdocs build --strict into site/", [["run", "docs:build"]]),
]

# pytest's closing line, with or without -q: "=== 3 passed, 2 skipped in 1.20s ===".
_PYTEST_TOTALS = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+) in [\d.]+s\b")
_PYTEST_COUNT = re.compile(r"(\d+) ([a-z]+)")
_SINGULAR = {"errors": "error", "warnings": "warning"}


def _hatch_ok(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    version = out.stdout.strip().rsplit(" ", 1)[-1]
    major, minor = (int(x) for x in version.split(".")[:2])
    return (major, minor) >= (1, 18)


def hatch() -> str:
    """Path of a hatch >= 1.18, installing one into .tools-venv when needed."""
    found = shutil.which("hatch")
    if found and _hatch_ok(found):
        return found
    exe = TOOLS_VENV / ("Scripts" if os.name == "nt" else "bin") / "hatch"
    if not (exe.exists() and _hatch_ok(str(exe))):
        print(f"installing {HATCH_REQ} into {TOOLS_VENV.relative_to(ROOT)}/ ...", flush=True)
        venv.create(TOOLS_VENV, with_pip=True, clear=True)
        python = exe.parent / "python"
        subprocess.run([str(python), "-m", "pip", "install", "-q", HATCH_REQ], check=True)
    return str(exe)


def _runs(exe: str) -> bool:
    try:
        return subprocess.run([exe, "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


def python_env() -> tuple[dict[str, str], list[str]]:
    """The environment in which ``python3.11``..``python3.13`` all run, and any still missing.

    pyenv installs every version but puts only the global one on PATH: its shims for the others
    exit 127. Naming them in PYENV_VERSION (after the current one, so ``python`` stays as it
    is) makes the shims work; hatch then finds them instead of trying to download a Python.
    """
    env = dict(os.environ)
    missing = [v for v in PYTHONS if not (shutil.which(f"python{v}") and _runs(f"python{v}"))]
    pyenv = shutil.which("pyenv")
    if missing and pyenv:
        current = subprocess.run(
            [pyenv, "version-name"], capture_output=True, text=True
        ).stdout.strip()
        installed = subprocess.run(
            [pyenv, "versions", "--bare"], capture_output=True, text=True
        ).stdout.split()
        chosen = [v for v in current.split(":") if v]
        for wanted in missing:
            patch = re.compile(re.escape(wanted) + r"\.(\d+)")
            matches = sorted((int(m.group(1)), v) for v in installed if (m := patch.fullmatch(v)))
            if matches:
                chosen.append(matches[-1][1])
        env["PYENV_VERSION"] = ":".join(chosen)
        missing = [
            v
            for v in missing
            if subprocess.run([f"python{v}", "--version"], capture_output=True, env=env).returncode
        ]
    return env, missing


def _run_counting(cmd: list[str], env: dict[str, str], totals: Counter[str]) -> int:
    """Run ``cmd``, echo its output, and add pytest's closing counts to ``totals``."""
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            match = _PYTEST_TOTALS.match(line.strip())
            if match:
                for number, word in _PYTEST_COUNT.findall(match.group(1)):
                    totals[_SINGULAR.get(word, word)] += int(number)
    return proc.returncode


def check(exe: str) -> int:
    env, missing = python_env()
    failed: list[str] = []
    totals: Counter[str] = Counter()
    started = time.monotonic()
    for title, steps in CHECKS:
        start = time.monotonic()
        code = 0
        for args in steps:
            print(f"\n=== {title}\n$ hatch {' '.join(args)}", flush=True)
            version = args[args.index("--python") + 1] if "--python" in args else None
            if version in missing:
                print(f"python{version} not found: install it (e.g. pyenv install {version})")
                code = 1
                break
            code = _run_counting([exe, *args], env, totals)
            if code:
                break
        print(
            f"=== {'ok' if code == 0 else 'FAILED'} in {time.monotonic() - start:.0f} s", flush=True
        )
        if code:
            failed.append(title)
    print()
    if failed:
        print("FAILED: " + "; ".join(failed))
    tests = ", ".join(f"{totals[word]} {word}" for word in ("passed", "skipped", "failed", "error"))
    extra = ", ".join(
        f"{n} {w}" for w, n in totals.items() if w not in ("passed", "skipped", "failed", "error")
    )
    print(
        f"checks: {len(CHECKS) - len(failed)} passed, {len(failed)} failed"
        f" in {time.monotonic() - started:.0f} s; tests over every pytest run: {tests}"
        + (f", {extra}" if extra else "")
    )
    return 1 if failed else 0


def wheels(exe: str) -> int:
    """Build the wheel of every distribution under packages/ into dist/."""
    out = ROOT / "dist"
    for package in sorted((ROOT / "packages").iterdir()):
        if not (package / "pyproject.toml").is_file():
            continue
        code = subprocess.run([exe, "build", "-t", "wheel", str(out)], cwd=package).returncode
        if code:
            return code
    print(f"\nwheels in {out}; install one with: pip install --find-links dist mtaio-cache")
    return 0


def main(argv: list[str]) -> int:
    commands = ("demo", "check", "docs", "wheels", "hatch")
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    exe = hatch()
    os.chdir(ROOT)
    command, rest = argv[0], argv[1:]
    if command == "hatch":
        return subprocess.run([exe, *rest]).returncode
    if command == "demo":
        return subprocess.run([exe, "run", "demo:run", *rest]).returncode
    if command == "docs":
        if rest[:1] == ["--serve"]:
            return subprocess.run([exe, "run", "docs:serve", *rest[1:]]).returncode
        return subprocess.run([exe, "run", "docs:build", *rest]).returncode
    if command == "wheels":
        return wheels(exe)
    return check(exe)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
