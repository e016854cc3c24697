import datetime
import subprocess
from pathlib import Path

import pytest

import release

TODAY = datetime.date(2026, 11, 25)


def version_of(root: Path, name: str) -> str:
    return str(release.read_version(root / "packages" / name))


def test_version_arithmetic() -> None:
    v = release.Version.parse("0.1.3")
    assert str(v.bumped("patch")) == "0.1.4"
    assert str(v.bumped("minor")) == "0.2.0"
    assert str(v.bumped("major")) == "1.0.0"
    assert str(v.bumped("0.5.0")) == "0.5.0"
    assert str(v.next_breaking()) == "0.2.0"
    assert str(release.Version(1, 4, 2).next_breaking()) == "2.0.0"
    with pytest.raises(ValueError, match=r"version must look like 1\.2\.3"):
        release.Version.parse("1.2")


def test_patch_bump_keeps_sibling_ranges(workspace: Path) -> None:
    release.bump(workspace, "mtaio-base", "patch", TODAY)
    assert version_of(workspace, "mtaio-base") == "0.1.1"
    core = (workspace / "packages/mtaio-core/pyproject.toml").read_text()
    assert '"mtaio-base>=0.1.0,<0.2"' in core


def test_breaking_bump_moves_dependent_ranges_and_notes_them(workspace: Path) -> None:
    release.bump(workspace, "mtaio-base", "minor", TODAY)
    assert version_of(workspace, "mtaio-base") == "0.2.0"
    for name in ("mtaio-core", "mtaio-events", "mtaio"):
        text = (workspace / "packages" / name / "pyproject.toml").read_text()
        assert '"mtaio-base>=0.2.0,<0.3"' in text, name
        log = (workspace / "packages" / name / "CHANGELOG.md").read_text()
        assert "- Requires `mtaio-base>=0.2.0,<0.3`." in log
    # Other ranges, and extras in the meta-package, are left as they were.
    meta = (workspace / "packages/mtaio/pyproject.toml").read_text()
    assert '"mtaio-cache[redis]>=0.1.0,<0.2"' in meta


def test_breaking_bump_keeps_extras_in_ranges(workspace: Path) -> None:
    release.bump(workspace, "mtaio-cache", "minor", TODAY)
    meta = (workspace / "packages/mtaio/pyproject.toml").read_text()
    assert '"mtaio-cache[redis]>=0.2.0,<0.3"' in meta


def test_bump_moves_unreleased_changelog_section(workspace: Path) -> None:
    log = workspace / "packages/mtaio-events/CHANGELOG.md"
    before = log.read_text()
    entry = before.split("## Unreleased", 1)[1].strip()
    release.bump(workspace, "mtaio-events", "minor", TODAY)
    after = log.read_text()
    unreleased, released = after.split("## [0.2.0] - 2026-11-25", 1)
    assert unreleased.rstrip().endswith("## Unreleased")
    assert released.strip() == entry


def test_bump_refuses_an_empty_release_and_going_back(workspace: Path) -> None:
    release.bump(workspace, "mtaio-data", "minor", TODAY)
    with pytest.raises(SystemExit, match="nothing under"):
        release.bump(workspace, "mtaio-data", "patch", TODAY)
    with pytest.raises(SystemExit, match=r"0\.1\.0 is not after 0\.2"):
        release.bump(workspace, "mtaio-data", "0.1.0", TODAY)
    with pytest.raises(SystemExit, match="no package"):
        release.bump(workspace, "mtaio-nope", "minor", TODAY)


def test_add_changelog_entry_reuses_existing_heading(workspace: Path) -> None:
    pkg = workspace / "packages/mtaio-core"
    release.add_changelog_entry(pkg, "Fixed", "one")
    release.add_changelog_entry(pkg, "Fixed", "two")
    section = (pkg / "CHANGELOG.md").read_text().split("## Unreleased", 1)[1]
    assert section.count("### Fixed") == 1
    assert "- two" in section and "- one" in section


def test_changed_lists_packages_since_their_tag(workspace: Path) -> None:
    assert set(release.changed_since_release(workspace).values()) == {"never released"}
    for name in ("mtaio-base", "mtaio-core"):
        subprocess.run(["git", "tag", f"{name}-v0.1.0"], cwd=workspace, check=True)
    (workspace / "packages/mtaio-core/CHANGELOG.md").write_text("changed\n")
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "c"],
        cwd=workspace,
        check=True,
    )
    changed = release.changed_since_release(workspace)
    assert changed["mtaio-core"] == "changed since mtaio-core-v0.1.0"
    assert "mtaio-base" not in changed
    assert changed["mtaio-events"] == "never released"


def test_cli_bump(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert release.main(["--root", str(workspace), "bump", "mtaio-base", "minor"]) == 0
    out = capsys.readouterr().out
    assert "mtaio-base: 0.1.0 -> 0.2.0; tag it mtaio-base-v0.2.0" in out
    assert "mtaio-core: range on mtaio-base moved to include 0.2.0" in out
    assert release.main(["--root", str(workspace), "changed"]) == 0
