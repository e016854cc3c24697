import logging

import mtaio.core  # noqa: F401  # importing the portion installs the handler


def test_the_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("mtaio.core").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
