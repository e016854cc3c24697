import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOOLS))  # the tools are scripts, importable from their folder


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A git repository holding copies of the real packages' pyproject and changelog."""
    root = tmp_path / "ws"
    for pkg in sorted((TOOLS.parent / "packages").iterdir()):
        target = root / "packages" / pkg.name
        target.mkdir(parents=True)
        for name in ("pyproject.toml", "CHANGELOG.md"):
            shutil.copy(pkg / name, target / name)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=root, check=True)
    return root
