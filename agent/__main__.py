"""Entry point for ``python -m agent``."""
from __future__ import print_function, division, absolute_import

import sys

from agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
