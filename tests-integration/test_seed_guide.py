from pathlib import Path

import pytest

from mtaio.exceptions import MTAIOError
from mtaio.typing import Result

SEED = Path(__file__).parent / "seed" / "advanced-usage.md"
SHARED_SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "advanced-usage.md"


def test_the_guide_has_eleven_snippets(seed_code: list[str]) -> None:
    assert len(seed_code) == 11
    assert "class ResilientExecutor" in seed_code[9]


@pytest.mark.skipif(not SHARED_SEED.exists(), reason="the shared specification is not beside us")
def test_copy_of_the_guide_matches_the_specification() -> None:
    assert SEED.read_bytes() == SHARED_SEED.read_bytes()


def test_base_portions_share_the_namespace() -> None:
    import mtaio

    assert not hasattr(mtaio, "__file__") or mtaio.__file__ is None
    assert MTAIOError.__module__.startswith("mtaio.exceptions")
    assert isinstance(Result.ok(1), Result)
    assert mtaio.__spec__ is not None
    assert mtaio.__spec__.origin in (None, "namespace")  # PEP 420: no mtaio/__init__.py
