from importlib.metadata import version

import mtaio.core


def test_version_matches_metadata() -> None:
    assert mtaio.core.__version__ == version("mtaio-core")
