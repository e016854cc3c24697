import re
import threading
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[0]
    # the example calls asyncio.run(): give it a thread of its own, away from any test loop
    errors: list[BaseException] = []

    def run() -> None:
        try:
            exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not errors
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "welcome ada",
        "audit audit.login",
        "admin event audit.login",
        "admin event user.login",
        "sport.football goal!",
    ]
