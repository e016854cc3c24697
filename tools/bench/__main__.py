"""Command line: ``python -m tools.bench [WORKLOAD ...] [--rounds N] [--quick] [--chart DIR]``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
import platform
import sys
from pathlib import Path

from . import workloads as _workloads
from ._runner import WORKLOADS, Options, Result, chart, markdown, run_scenario


def _discover() -> None:
    for info in pkgutil.iter_modules(_workloads.__path__):
        importlib.import_module(f"{_workloads.__name__}.{info.name}")


async def _run(names: list[str], options: Options) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    for name in names:
        results: list[Result] = []
        for scenario in WORKLOADS[name](options):
            results.extend(await run_scenario(scenario, options))
        out[name] = results
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument("workloads", nargs="*", help="workloads to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per case")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds per case")
    parser.add_argument("--quick", action="store_true", help="a tenth of the work: a smoke run")
    parser.add_argument("--chart", metavar="DIR", help="write <workload>.png ratio charts here")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument(
        "--from-markdown",
        metavar="FILE",
        help="run nothing: chart the tables already in FILE into --chart DIR (table-<n>.png)",
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio")
    args = parser.parse_args(argv)
    if args.from_markdown:
        if not args.chart:
            parser.error("--from-markdown needs --chart DIR")
        from ._from_markdown import charts

        for path in charts(args.from_markdown, args.chart):
            print(path)
        return 0
    _discover()
    if args.list:
        print("\n".join(sorted(WORKLOADS)))
        return 0
    names = args.workloads or sorted(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; known: {sorted(WORKLOADS)}")
    options = Options(rounds=args.rounds, warmup=args.warmup, quick=args.quick)
    if args.uvloop:
        import uvloop

        all_results = uvloop.run(_run(names, options))
    else:
        all_results = asyncio.run(_run(names, options))
    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, rounds={options.rounds}{' quick' if options.quick else ''} -->"
    )
    for name, results in all_results.items():
        print(f"\n### {name}\n")
        print(markdown(results))
        if args.chart:
            Path(args.chart).mkdir(parents=True, exist_ok=True)
            chart(results, str(Path(args.chart) / f"{name}.png"), f"mtaio bench: {name}")
    if args.json:
        payload = {n: [r.__dict__ for r in rs] for n, rs in all_results.items()}
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
