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


async def test_readme_redis_example_runs(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    code = next(b for b in blocks if "RedisStreamsTransport(" in b)
    namespace: dict[str, object] = {"__name__": "readme_redis_example"}
    code = code.replace("redis://localhost:6379/0", redis_url)
    exec(compile(code, str(README), "exec"), namespace)
    await namespace["fan_out"]()  # type: ignore[operator]
    await namespace["work_queue"]()  # type: ignore[operator]
    assert capsys.readouterr().out.splitlines() == [
        "received Order(id=1, item='book')",
        "billing pen delivery 1",
    ]
