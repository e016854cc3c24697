"""The Python examples of the documentation, read from the Markdown itself.

Every fenced ```` ```python ```` block of the root README, each package README and every page
under docs/ is an example a reader may copy: tests-integration/test_markdown_snippets.py runs
each one, and ``python tools/snippets.py mypy`` (part of ``hatch run types:check``) type-checks
each one with ``mypy --strict``. Nothing is copied into the tests by hand, so an example cannot
drift from what the page shows.

An HTML comment on the line before a block (invisible on the page) changes how it is treated:

- ``<!-- snippet: continue -->``: the block continues the previous block of the same file (a
  walkthrough in several steps); they run and are checked as one program.
- ``<!-- snippet: untyped REASON -->``: the block runs but is not type-checked (the
  specification's own code, kept as written).
- ``<!-- snippet: skip REASON -->``: the block is neither run nor checked (say why).

    python tools/snippets.py list            # every snippet: file, line, treatment
    python tools/snippets.py mypy [ARGS]     # mypy --strict over every typed snippet
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z0-9_+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<kind>continue|untyped|skip)\b(?P<why>.*?)-->\s*$")


@dataclass
class Snippet:
    """One runnable example: the code of one block, or of a block and its continuations."""

    path: Path
    line: int
    code: str
    typed: bool = True
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def module_name(self) -> str:
        stem = re.sub(r"[^0-9a-zA-Z]+", "_", self.id).strip("_").lower()
        return f"snippet_{stem}"


def markdown_files() -> list[Path]:
    """The root README, the package READMEs and the documentation pages, in a stable order."""
    files = [ROOT / "README.md"]
    files += sorted((ROOT / "packages").glob("*/README.md"))
    files += sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


def parse(path: Path) -> list[Snippet]:
    """The python snippets of one Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Snippet] = []
    i = 0
    marker: tuple[str, str] | None = None
    while i < len(lines):
        line = lines[i]
        found = _MARKER.match(line)
        if found:
            marker = (found["kind"], found["why"].strip())
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                marker = None
            i += 1
            continue
        indent, lang = fence["indent"], fence["lang"]
        body: list[str] = []
        start = i + 1
        i += 1
        while i < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[i]):
            text = lines[i]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            i += 1
        i += 1  # the closing fence
        if lang != "python":
            marker = None
            continue
        code = "\n".join(body) + "\n"
        kind, why = marker or ("", "")
        marker = None
        if kind == "continue" and out:
            previous = out[-1]
            previous.code += "\n" + code
            continue
        out.append(
            Snippet(
                path=path,
                line=start,
                code=code,
                typed=kind != "untyped",
                skip=(why or "no reason given") if kind == "skip" else None,
            )
        )
    return out


def collect() -> list[Snippet]:
    """Every snippet of every documentation file."""
    return [s for path in markdown_files() for s in parse(path)]


def mypy(args: list[str]) -> int:
    """Write every typed snippet to its own module and run mypy --strict over all of them."""
    snippets = [s for s in collect() if s.typed and s.skip is None]
    with tempfile.TemporaryDirectory(prefix="mtaio-snippets-") as tmp:
        files = []
        for snippet in snippets:
            file = Path(tmp) / f"{snippet.module_name}.py"
            file.write_text(snippet.code, encoding="utf-8")
            files.append(str(file))
        print(f"mypy --strict over {len(files)} documentation snippets", flush=True)
        cmd = [sys.executable, "-m", "mypy", "--strict", "--config-file", "pyproject.toml"]
        done = subprocess.run([*cmd, *args, *files], cwd=ROOT, capture_output=True, text=True)
        # Name the Markdown file and line, not the temporary module.
        where = {f"{s.module_name}.py": s for s in snippets}
        for line in (done.stdout + done.stderr).splitlines():
            head, sep, rest = line.partition(":")
            found = where.get(Path(head).name)
            if found is not None and sep:
                number, _, message = rest.partition(":")
                if number.isdigit():
                    md_line = found.line + int(number) - 1
                    line = f"{found.path.relative_to(ROOT)}:{md_line} (snippet):{message}"
            print(line)
        return done.returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["list"]:
        for s in collect():
            how = f"skip: {s.skip}" if s.skip else "run" + ("" if s.typed else ", untyped")
            print(f"{s.id}  ({how})")
        return 0
    if argv[:1] == ["mypy"]:
        return mypy(argv[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
