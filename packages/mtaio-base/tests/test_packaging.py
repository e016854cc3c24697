from importlib.metadata import version

import mtaio.exceptions


def test_version_matches_metadata() -> None:
    assert mtaio.exceptions.__version__ == version("mtaio-base")
