"""CPythons other than the project venv's (3.11), for the tests that prove the operator's requirements install
and run elsewhere: a `python3.X` on PATH, pyenv's (this machine's image has 3.10, 3.12 and 3.13 there), else uv's
managed CPython (`uv python install`, uv pinned in requirements-dev.txt), which downloads python-build-standalone
from GitHub: where that is not reachable and no other is found, the test fails saying so (never skips)."""
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_VERSION = "import platform, sys; print(platform.python_implementation(), '%d.%d' % sys.version_info[:2])"


def _is_cpython(path, minor):
    try:
        out = subprocess.run([path, "-c", _VERSION], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return out.split() == ["CPython", minor]  # a pyenv shim of a version not selected exits 127


def _uv():
    found = Path(sys.executable).with_name("uv")
    return str(found) if found.exists() else shutil.which("uv")


def find_cpython(minor):
    """Path of a CPython `minor` ("3.13") interpreter, or None with the places tried."""
    tried = []
    candidates = [shutil.which("python" + minor)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/%s.*/bin/python%s" % (minor, minor))))
    for path in filter(None, candidates):
        tried.append(path)
        if _is_cpython(path, minor):
            return path, tried
    uv = _uv()
    if uv:
        for install_first in (False, True):
            if install_first:
                proc = subprocess.run([uv, "python", "install", minor], capture_output=True, text=True,
                                      timeout=600)
                if proc.returncode != 0:
                    tried.append("`uv python install %s`: %s" % (minor, proc.stderr.strip()[-300:]))
                    break
            proc = subprocess.run([uv, "python", "find", "--managed-python", minor], capture_output=True,
                                  text=True, timeout=120)
            path = proc.stdout.strip()
            tried.append("uv's managed %s: %s" % (minor, path or proc.stderr.strip()[-300:]))
            if proc.returncode == 0 and path and _is_cpython(path, minor):
                return path, tried
    return None, tried


def cpython(minor):
    """A CPython `minor` interpreter, or the test fails naming where it looked."""
    path, tried = find_cpython(minor)
    if path is None:
        pytest.fail("no CPython %s found (tried: %s); install one (e.g. `uv python install %s`, which needs "
                    "GitHub, or your OS's python%s)" % (minor, "; ".join(tried) or "nothing", minor, minor))
    return path


def vermin(*args):
    """Run vermin (its console script's entry point) as a process."""
    command = [sys.executable, "-c", "import sys; from vermin import main; sys.argv[0] = 'vermin'; sys.exit(main())",
               "-t=2.7-", "-t=3.6-", "--no-tips", "--violations"] + list(args)
    return subprocess.run(command, capture_output=True, text=True)
