"""The demo runs on embedded defaults and its figures add up."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEMO = Path(__file__).parent / "demo.py"


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mtaio_demo", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mtaio_demo"] = module
    spec.loader.exec_module(module)
    return module


async def test_a_short_run_on_embedded_nodes_adds_up(demo: ModuleType) -> None:
    args = demo.parse_args(["--duration", "1.5", "--rate", "120", "--quiet", "--seed", "3"])
    summary: dict[str, Any] = await demo.run(args)

    orders = summary["orders"]
    assert orders["emitted"] > 50
    assert orders["emitted"] == orders["completed"] + orders["failed"] + orders["rejected"]
    assert orders["rejected"] >= 1  # about 2% of the orders are malformed
    assert sum(summary["notifications"].values()) == orders["emitted"]
    assert summary["notifications"]["order.completed"] == orders["completed"]
    cache = summary["cache"]
    assert cache["lookups"] == orders["emitted"] - orders["rejected"]
    assert cache["local hit rate"] + cache["distributed hit rate"] <= 1.0
    assert cache["loads from the database"] >= 1
    assert len(cache["distributed nodes"]) == 2
    assert all(node["up"] for node in cache["distributed nodes"].values())
    assert summary["payments"]["calls"] >= orders["completed"]
    assert summary["profile"]["order"]["count"] == orders["emitted"]
    assert summary["system"]["requests"] == orders["emitted"]
    assert summary["storage"].startswith("2 embedded CacheNodes")


def test_help_names_the_flags(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--duration", "--rate", "--redis", "--seed", "--quiet"):
        assert flag in out


def test_bad_flags_are_refused(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        demo.parse_args(["--rate", "0"])
    assert info.value.code == 2
    assert "--duration and --rate must be positive" in capsys.readouterr().err
