import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[0]
    exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.splitlines() == [
        "[[1, 2], [3]]",
        "['user_id missing']",
        "Validate {}",
        "36",
        "[0, 6, 18, 36]",
        "18",
    ]
