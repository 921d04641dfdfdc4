"""`python -m mxlab` is the same as the `mxlab` console script."""
import sys

from mxlab.cli import main

sys.exit(main())
