"""The package logger, ``mtaio.monitoring``.

A ``NullHandler`` keeps it silent unless the application configures logging (the library
convention: no "No handlers could be found" output, no basicConfig).
"""

from __future__ import annotations

import logging

logger = logging.getLogger("mtaio.monitoring")
logger.addHandler(logging.NullHandler())
