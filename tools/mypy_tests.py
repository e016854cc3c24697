"""Type-check every package's tests, one package per mypy run, then tests-integration.

The packages' test folders share module names (conftest, test_packaging), which one mypy run
would report as duplicates (STYLE.md P6); separate runs keep each folder's names its own.
"""

from __future__ import annotations

import subprocess
import sys

from workspace import DISTS, ROOT


def main() -> int:
    targets = [d.path / "tests" for d in DISTS if (d.path / "tests").is_dir()]
    targets.append(ROOT / "tests-integration")
    failed = []
    for target in targets:
        rel = target.relative_to(ROOT)
        print(f"mypy {rel}", flush=True)
        if subprocess.run([sys.executable, "-m", "mypy", str(rel)], cwd=ROOT).returncode:
            failed.append(str(rel))
    if failed:
        print(f"mypy failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
