from importlib.metadata import version

import mtaio.resources


def test_version_matches_metadata() -> None:
    assert mtaio.resources.__version__ == version("mtaio-resources")
