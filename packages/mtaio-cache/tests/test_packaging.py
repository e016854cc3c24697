from importlib.metadata import version

import mtaio.cache


def test_version_matches_metadata() -> None:
    assert mtaio.cache.__version__ == version("mtaio-cache")
