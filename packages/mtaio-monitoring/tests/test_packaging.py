from importlib.metadata import version

import mtaio.monitoring


def test_version_matches_metadata() -> None:
    assert mtaio.monitoring.__version__ == version("mtaio-monitoring")
