from importlib.metadata import version

import mtaio.data


def test_version_matches_metadata() -> None:
    assert mtaio.data.__version__ == version("mtaio-data")
