"""Fixtures shared by the local-cache tests (the distributed ones have their own conftest)."""

from __future__ import annotations

import pytest

from mtaio.typing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test advances it."""
    return ManualClock(1000.0)
