import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_example_runs() -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[0]
    # A fresh interpreter: the example calls asyncio.run() itself.
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[:8] == [
        "9",
        "[0, 1, 4, 9, 16]",
        "[0, 1, 4, 9, 16]",
        "49",
        "[1, 4]",
        "14",
        "['odd: 1', 'odd: 3']",
        "True",
    ]
    assert out[-1] == "True"
