"""Where the checkout is, for the tests that run its scripts, read its files or start its packages as
processes (tests/ is one level below the repository root)."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
