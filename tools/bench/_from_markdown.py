"""Read benchmark tables back from Markdown, to chart published figures without re-running.

A table is any Markdown table whose header has ``scenario``, ``case``, ``median ops/s`` and
``ratio to raw`` columns, as :func:`~tools.bench._runner.markdown` prints them (further
columns are ignored). Its title is the nearest heading above it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._runner import Result, chart

_UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _rate(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)\s*([kMG]?)", text.replace(",", ""))
    return float(match[1]) * _UNITS[match[2]] if match else 0.0


def _ratio(text: str) -> float | None:
    match = re.fullmatch(r"([\d.]+)x", text)
    return float(match[1]) if match else None


def tables(text: str) -> list[tuple[str, list[Result]]]:
    """Every benchmark table of ``text``: (title, results), in order."""
    out: list[tuple[str, list[Result]]] = []
    lines = text.splitlines()
    title = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            title = line.lstrip("#").strip()
        head = _cells(line) if line.startswith("|") else []
        if {"scenario", "case", "median ops/s", "ratio to raw"} <= set(head):
            at = {name: head.index(name) for name in ("scenario", "case", "median ops/s")}
            at["ratio"] = head.index("ratio to raw")
            results = []
            i += 2  # the header and its separator
            while i < len(lines) and lines[i].startswith("|"):
                row = _cells(lines[i])
                case = row[at["case"]].strip("*")
                results.append(
                    Result(
                        scenario=row[at["scenario"]],
                        case=case,
                        raw=case.lower().startswith("raw"),
                        ops_per_s=_rate(row[at["median ops/s"]]),
                        seconds=[],
                        ratio=_ratio(row[at["ratio"]]),
                    )
                )
                i += 1
            out.append((title, results))
            continue
        i += 1
    return out


def charts(markdown_file: str, out_dir: str) -> list[Path]:
    """Chart every benchmark table of ``markdown_file`` as ``<out_dir>/table-<n>.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    text = Path(markdown_file).read_text(encoding="utf-8")
    for n, (title, results) in enumerate(tables(text), start=1):
        path = out / f"table-{n}.png"
        chart(results, str(path), title or f"table {n}")
        written.append(path)
    return written
