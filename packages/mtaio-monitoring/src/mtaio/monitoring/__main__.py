"""Entry point of ``python -m mtaio.monitoring`` (see :mod:`mtaio.monitoring._cli`)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
