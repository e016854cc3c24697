import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.looptime
async def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[0]
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(code, str(README), "exec"), namespace)
    await namespace["main"]()
    out = capsys.readouterr().out.splitlines()
    assert out == [
        str([i * 2 for i in range(10)]),
        "expired: True",
        "42",
        "closed",
    ]


async def test_the_readme_retry_example_runs() -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[1]
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(code, str(README), "exec"), namespace)
    assert await namespace["fetch_with_retries"]() == "okok"


async def test_the_readme_shared_example_runs(redis_server: Any) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[2]
    code = code.replace("redis://localhost:6379/0", redis_server.url)
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(code, str(README), "exec"), namespace)
    assert (await namespace["charge"]("alice")).startswith("charged alice")
    await namespace["jobs"].close()
    await namespace["store"].close()
