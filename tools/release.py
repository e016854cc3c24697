"""Release helpers for the independently versioned mtaio distributions.

    python tools/release.py bump mtaio-base minor      # or major / patch / 0.3.1
    python tools/release.py changed                     # packages changed since their last tag

``bump`` rewrites the package's static ``version``, moves its ``## Unreleased`` changelog
section under the new version (leaving a fresh, empty Unreleased), and, when the new version
falls outside the range a sibling declares (``mtaio-base>=0.1.0,<0.2``), moves that range to
``>=NEW,<NEXT_BREAKING`` and notes the change in the sibling's changelog. Tags are
``<dist>-v<version>`` (``mtaio-base-v0.2.0``), as hatch tags ``hatchling-v*``.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parent.parent
VERSION_RE = re.compile(r'^version = "(\d+)\.(\d+)\.(\d+)"$', re.M)
UNRELEASED = "## Unreleased"


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text.strip())
        if not match:
            raise ValueError(f"version must look like 1.2.3, got {text!r}")
        return cls(*(int(g) for g in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def bumped(self, part: str) -> Version:
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        if part == "patch":
            return Version(self.major, self.minor, self.patch + 1)
        return Version.parse(part)

    def next_breaking(self) -> Version:
        """The first version SemVer allows to break this one's API (0.x: the next minor)."""
        if self.major == 0:
            return Version(0, self.minor + 1, 0)
        return Version(self.major + 1, 0, 0)


def cap_text(v: Version) -> str:
    """``0.2`` for 0.2.0 and ``2`` for 2.0.0: the short form used in our ranges."""
    return f"0.{v.minor}" if v.major == 0 else f"{v.major}"


def read_version(pkg: Path) -> Version:
    match = VERSION_RE.search((pkg / "pyproject.toml").read_text())
    if not match:
        raise SystemExit(f"{pkg / 'pyproject.toml'} has no static version")
    return Version(*(int(g) for g in match.groups()))


def write_version(pkg: Path, version: Version) -> None:
    path = pkg / "pyproject.toml"
    path.write_text(VERSION_RE.sub(f'version = "{version}"', path.read_text(), count=1))


def release_changelog(pkg: Path, version: Version, today: datetime.date) -> None:
    """Move the Unreleased section under ``## [version] - date`` and start a new one."""
    path = pkg / "CHANGELOG.md"
    text = path.read_text()
    if UNRELEASED not in text:
        raise SystemExit(f"{path} has no '{UNRELEASED}' section")
    head, body = text.split(UNRELEASED, 1)
    nxt = body.find("\n## ")
    section, rest = (body, "") if nxt < 0 else (body[:nxt], body[nxt:])
    if not section.strip():
        raise SystemExit(f"{path}: nothing under '{UNRELEASED}' to release")
    path.write_text(
        f"{head}{UNRELEASED}\n\n## [{version}] - {today.isoformat()}\n{section.rstrip()}\n{rest}"
    )


def add_changelog_entry(pkg: Path, heading: str, entry: str) -> None:
    """Add ``- entry`` under ``### heading`` of the Unreleased section."""
    path = pkg / "CHANGELOG.md"
    text = path.read_text()
    head, body = text.split(UNRELEASED, 1)
    nxt = body.find("\n## ")
    section, rest = (body, "") if nxt < 0 else (body[:nxt], body[nxt:])
    marker = f"### {heading}\n"
    if marker in section:
        section = section.replace(marker, f"{marker}\n- {entry}\n", 1).replace("\n\n\n", "\n\n")
    else:
        section = f"{section.rstrip()}\n\n{marker}\n- {entry}\n"
    path.write_text(f"{head}{UNRELEASED}{section}{rest}")


RANGE_RE = r'"{name}(\[[^\]]*\])?>=(\d+\.\d+\.\d+),<([\d.]+)"'


def update_dependents(root: Path, name: str, version: Version) -> list[str]:
    """Move every sibling range on ``name`` that excludes ``version``; return who changed."""
    changed = []
    pattern = re.compile(RANGE_RE.format(name=re.escape(name)))
    new_range = f">={version},<{cap_text(version.next_breaking())}"
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        text = pyproject.read_text()

        def fix(match: re.Match[str]) -> str:
            cap = Version.parse(match.group(3) + ".0" * (2 - match.group(3).count(".")))
            floor = Version.parse(match.group(2))
            if floor <= version < cap:
                return match.group(0)
            return f'"{name}{match.group(1) or ""}{new_range}"'

        new_text = pattern.sub(fix, text)
        if new_text != text:
            pyproject.write_text(new_text)
            add_changelog_entry(pyproject.parent, "Changed", f"Requires `{name}{new_range}`.")
            changed.append(pyproject.parent.name)
    return changed


def bump(root: Path, name: str, part: str, today: datetime.date | None = None) -> Version:
    pkg = root / "packages" / name
    if not (pkg / "pyproject.toml").exists():
        raise SystemExit(f"no package {name!r} under {root / 'packages'}")
    old = read_version(pkg)
    new = old.bumped(part)
    if new <= old:
        raise SystemExit(f"{name}: {new} is not after {old}")
    write_version(pkg, new)
    release_changelog(pkg, new, today or datetime.date.today())
    for dependent in update_dependents(root, name, new):
        print(f"{dependent}: range on {name} moved to include {new}")
    print(f"{name}: {old} -> {new}; tag it {name}-v{new}")
    return new


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


def changed_since_release(root: Path) -> dict[str, str]:
    """Each package with commits since its last ``<dist>-v*`` tag, and that tag (or 'never')."""
    out: dict[str, str] = {}
    for pkg in sorted(p.parent for p in (root / "packages").glob("*/pyproject.toml")):
        name = pkg.name
        tags = git(root, "tag", "--list", f"{name}-v*", "--sort=-v:refname").split()
        if not tags:
            out[name] = "never released"
            continue
        if git(root, "log", "--oneline", f"{tags[0]}..HEAD", "--", str(pkg.relative_to(root))):
            out[name] = f"changed since {tags[0]}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bump", help="bump one package's version")
    b.add_argument("name")
    b.add_argument("part", help="major, minor, patch or an explicit X.Y.Z")
    sub.add_parser("changed", help="list packages changed since their last release tag")
    args = parser.parse_args(argv)
    if args.command == "bump":
        bump(args.root, args.name, args.part)
    else:
        for name, why in changed_since_release(args.root).items():
            print(f"{name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
