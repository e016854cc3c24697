"""tools.bench reads its own Markdown tables back (for the docs' charts)."""

from bench._from_markdown import tables
from bench._runner import Result, markdown

PAGE = """\
# Benchmarks

### events

Some text.

| scenario | case | median ops/s | ratio to raw | bytes/entry |
|---|---|---|---|---|
| emit | raw dict of lists | 1.2 M | 1.00x | 3 |
| emit | **mtaio EventEmitter** | 950 k | 0.79x | 4 |
| emit | pyee | 24 k | 0.02x | |
| emit | broken | — | — | |

| workload | mtaio | best peer |
|---|---|---|
| not a benchmark table | 1x | 2x |
"""


def test_tables_are_read_with_their_heading_and_ratios() -> None:
    [(title, results)] = tables(PAGE)

    assert title == "events"
    cases = ["raw dict of lists", "mtaio EventEmitter", "pyee", "broken"]
    assert [r.case for r in results] == cases
    assert [r.ratio for r in results] == [1.0, 0.79, 0.02, None]
    assert [r.ops_per_s for r in results] == [1.2e6, 950e3, 24e3, 0.0]
    assert [r.raw for r in results] == [True, False, False, False]


def test_what_markdown_prints_reads_back() -> None:
    printed = [
        Result("s", "raw loop", True, 2000.0, [], ratio=1.0),
        Result("s", "mtaio thing", False, 1500.0, [], ratio=0.75),
    ]
    [(_, results)] = tables("## w\n\n" + markdown(printed) + "\n")

    assert [(r.case, r.ratio, r.ops_per_s) for r in results] == [
        ("raw loop", 1.0, 2000.0),
        ("mtaio thing", 0.75, 1500.0),
    ]
