"""mtaio benchmarks: each workload runs mtaio, the peer libraries and a raw asyncio baseline
in one process, and reports median ops/s and the ratio to the raw baseline.

Run ``hatch run bench:run --list`` to see the workloads, ``hatch run bench:run events``
to run one. A workload is a module in ``tools/bench/workloads/`` that decorates a function
with :func:`workload`; the function returns the :class:`Scenario` objects to measure.
"""

from ._runner import WORKLOADS, Case, Options, Result, Scenario, run_scenario, workload

__all__ = ["WORKLOADS", "Case", "Options", "Result", "Scenario", "run_scenario", "workload"]
