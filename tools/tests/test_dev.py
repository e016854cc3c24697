"""tools/dev.py: check's closing line counts the checks and every test outcome."""

import os
import sys

import pytest

import dev


def _step(code: str) -> list[str]:
    return ["-c", code]


def test_the_last_line_counts_skips_and_failures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = [
        ("quiet -q run", [_step("print('893 passed, 2 skipped in 23.76s')")]),
        (
            "verbose run",
            [_step("print('===== 10 passed, 28 skipped, 3 warnings in 3.2s =====')")],
        ),
        ("a failing run", [_step("print('== 1 failed, 4 passed, 1 error in 1.0s =='); exit(1)")]),
        ("no pytest", [_step("print('Success: no issues found in 4 source files')")]),
    ]
    monkeypatch.setattr(dev, "CHECKS", checks)
    monkeypatch.setattr(dev, "python_env", lambda: (dict(os.environ), []))

    assert dev.check(sys.executable) == 1

    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2] == "FAILED: a failing run"
    assert out[-1].startswith("checks: 3 passed, 1 failed in ")
    assert out[-1].endswith(
        "tests over every pytest run: 907 passed, 30 skipped, 1 failed, 1 error, 3 warning"
    )


def test_a_missing_python_fails_its_step_with_advice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "CHECKS", [("tests on 3.99", [["test", "--python", "3.99"]])])
    monkeypatch.setattr(dev, "python_env", lambda: (dict(os.environ), ["3.99"]))

    assert dev.check(sys.executable) == 1

    out = capsys.readouterr().out
    assert "python3.99 not found: install it (e.g. pyenv install 3.99)" in out
    assert out.strip().splitlines()[-1].startswith("checks: 0 passed, 1 failed")
