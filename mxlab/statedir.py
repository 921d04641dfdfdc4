"""Where mxlab keeps per-lab state on the operator machine: ~/.mxlab/<stack>/ (or $MXLAB_HOME)."""
import os
from pathlib import Path


def home():
    return Path(os.environ.get("MXLAB_HOME") or Path.home() / ".mxlab")


def stack_dir(stack, create=True):
    path = home() / stack
    if create:
        # 0700: the directory holds private keys.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def outputs_file(stack):
    return home() / stack / "outputs.json"
