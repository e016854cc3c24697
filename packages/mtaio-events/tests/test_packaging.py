from importlib.metadata import version

import mtaio.events


def test_version_matches_metadata() -> None:
    assert mtaio.events.__version__ == version("mtaio-events")
