"""The table of mtaio distributions: what each ships and which siblings it may import.

Single source for the a la carte check and the release tools; it mirrors each package's
declared dependencies and the import-linter contracts in the root pyproject.toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"


@dataclass(frozen=True)
class Dist:
    """A distribution: its portions and the sibling distributions it depends on."""

    name: str
    portions: tuple[str, ...]
    siblings: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return PACKAGES / self.name


BASE = Dist("mtaio-base", ("mtaio.exceptions", "mtaio.testing", "mtaio.typing"))
DISTS: tuple[Dist, ...] = (
    BASE,
    Dist("mtaio-core", ("mtaio.core",), ("mtaio-base",)),
    Dist("mtaio-events", ("mtaio.events",), ("mtaio-base",)),
    Dist("mtaio-cache", ("mtaio.cache",), ("mtaio-base",)),
    Dist("mtaio-data", ("mtaio.data",), ("mtaio-base",)),
    Dist("mtaio-resources", ("mtaio.resources",), ("mtaio-base",)),
    Dist("mtaio-monitoring", ("mtaio.monitoring",), ("mtaio-base",)),
)
META = Dist("mtaio", (), tuple(d.name for d in DISTS))
ALL: tuple[Dist, ...] = (*DISTS, META)
BY_NAME = {d.name: d for d in ALL}
ALL_PORTIONS: tuple[str, ...] = tuple(p for d in DISTS for p in d.portions)


def reachable_portions(dist: Dist) -> set[str]:
    """The portions importable once ``dist`` and its sibling dependencies are installed."""
    seen: set[str] = set()
    stack = [dist]
    while stack:
        d = stack.pop()
        seen.update(d.portions)
        stack.extend(BY_NAME[s] for s in d.siblings)
    return seen
