"""The README's two commands, on a machine with nothing but Python 3.11+ and pip.

    python tools/dev.py demo [ARGS]   # run the demo on embedded defaults
    python tools/dev.py check         # every check: lint, types, all tests with coverage,
                                      # each package alone (>= 90% branch coverage), a la carte

Hatch runs everything. When no hatch >= 1.18 is on PATH, one is installed with pip into
``.tools-venv/`` beside this checkout (once), so nothing is installed into your Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_VENV = ROOT / ".tools-venv"
HATCH_REQ = "hatch>=1.18"

CHECKS: list[tuple[str, list[list[str]]]] = [
    ("lint: ruff check, ruff format --check, import-linter", [["run", "lint:check"]]),
    ("types: mypy --strict over every source and test", [["run", "types:check"]]),
    ("tests: every package and tests-integration, branch coverage", [["test", "--cover"]]),
    (
        "each package alone, >= 90% branch coverage from its own tests",
        # The solo envs install sibling packages as built copies, which hatch would keep
        # while their version number stays the same: start them afresh from this checkout.
        [["env", "remove", "solo"], ["run", "solo:test"]],
    ),
    ("a la carte: build, install each distribution alone, import", [["run", "alacarte:check"]]),
]


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


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "check"):
        print(__doc__)
        return 2
    exe = hatch()
    os.chdir(ROOT)
    if argv[0] == "demo":
        return subprocess.run([exe, "run", "demo:run", *argv[1:]]).returncode
    failed = []
    for title, steps in CHECKS:
        start = time.monotonic()
        code = 0
        for args in steps:
            print(f"\n=== {title}\n$ hatch {' '.join(args)}", flush=True)
            code = subprocess.run([exe, *args]).returncode
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
    print(f"checks: {len(CHECKS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
