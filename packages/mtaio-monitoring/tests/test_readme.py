from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.looptime
async def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[0]
    assert code.rstrip().endswith("asyncio.run(main())")
    code = code.rstrip().removesuffix("asyncio.run(main())")  # we are already in a loop
    ns: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec", dont_inherit=True), ns)
    await ns["main"]()  # type: ignore[operator]
    out = capsys.readouterr().out
    assert "ALERT: queue_depth is 120, above the threshold 100" in out
    assert "5 requests, 10.0 ms mean" in out
    assert "HistorySummary(metric='memory.percent', count=2" in out
    assert re.search(r"Prometheus can scrape http://127\.0\.0\.1:\d+/metrics", out)
    assert re.search(r"handle\s+5\s", out)


async def test_readme_registry_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("prometheus_client")
    code = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)[1]
    code = code.rstrip().removesuffix("asyncio.run(main())")
    ns: dict[str, object] = {"__name__": "readme_registry_example"}
    exec(compile(code, str(README), "exec", dont_inherit=True), ns)
    await ns["main"]()  # type: ignore[operator]
    assert re.search(r"scrape http://127\.0\.0\.1:\d+/metrics", capsys.readouterr().out)
    registry = ns["registry"]
    assert registry.value("cache.hit_rate") == 0.9  # type: ignore[attr-defined]
    assert registry.get("db_seconds").labels().count == 3  # type: ignore[attr-defined]
    assert registry.value("jobs_running") == 0  # type: ignore[attr-defined]
    assert registry.value("queue_len") == 2  # type: ignore[attr-defined]
